// What the exec'd runtimes (Python) need inside the jail: the files Landlock lets them read
// and the code appended to call an entry function.
#pragma once

#include <string>
#include <vector>

namespace engram::sandbox {

// The files and directories python3 reads at start-up with -I -S: the interpreter binary
// (symlinks resolved), its standard library, the shared libraries and the dynamic
// loader's cache.
std::vector<std::string> PythonReadOnlyPaths(const std::string& python);

// Python source appended to the program when an entry function is given: calls `entry`
// (an identifier) with the elements of the JSON array `args_json` and prints the result
// as JSON unless it is None.
std::string PythonEntryEpilogue(const std::string& entry, const std::string& args_json);

}  // namespace engram::sandbox
