// Layer 5: static analysis that rejects known escape idioms before anything runs, with the
// reason, so a model learns at once why its snippet was refused. It is a tripwire, not the
// boundary: the code is tokenised (comments skipped, string literals kept) and compared
// with the documented lists below; whatever slips past meets layers 1-4 and 6.
//
// JavaScript: require(...), import declarations and import(...), the Node/Deno/Bun globals
// (process, Deno, Bun, child_process), Duktape.act/Duktape.info (engine internals), and
// dynamic code (eval, Function, .constructor.constructor) that would hide code from this
// analysis.
//
// Python: importing modules that reach the system or network (ctypes, cffi, subprocess,
// socket, ssl, multiprocessing, pty, posix, resource, urllib, http, ftplib, smtplib,
// telnetlib, asyncio, selectors, mmap, fcntl, importlib); os.system/popen/exec*/spawn*/
// fork*/kill*/set*id/setsid/chroot/unshare/setns/environ/putenv; dynamic code and
// introspection escapes (__import__, eval, exec, compile, __subclasses__, __globals__,
// __builtins__, __code__, __mro__, sys.modules, sys._getframe); and string literals naming
// places outside the scratch directory (/etc/, /proc/, /sys/, /dev/, /root, /home/, /var/,
// /boot/, ~/, .ssh).
//
// WebAssembly: imports other than the documented "env" print functions (the runtime
// refuses them too; rejecting early gives the reason).
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "engram/sandbox.h"

namespace engram::sandbox {

// One documented escape idiom.
struct EscapeIdiom {
  std::string pattern;  // as shown to users: "require(", "import subprocess", "\"/etc/\""
  std::string reason;   // why it is refused
};

// A match: which idiom, where (1-based line), and the message returned to the caller.
struct StaticFinding {
  EscapeIdiom idiom;
  int line = 0;
  // "line 3: require( — Node-style module loading (fs, child_process, net) is not available
  // in the sandbox"
  std::string message;
};

// The documented list for `language`.
std::vector<EscapeIdiom> EscapeIdioms(SandboxLanguage language);

// The first escape idiom in `code`, or nullopt when there is none.
std::optional<StaticFinding> FindEscapeIdiom(SandboxLanguage language, std::string_view code);

}  // namespace engram::sandbox
