// Clang thread-safety annotations (-Wthread-safety). Empty on other compilers.
#pragma once

#if defined(__clang__)
#define ENGRAM_THREAD_ANNOTATION_(x) __attribute__((x))
#else
#define ENGRAM_THREAD_ANNOTATION_(x)
#endif

#define ENGRAM_CAPABILITY(x) ENGRAM_THREAD_ANNOTATION_(capability(x))
#define ENGRAM_SCOPED_CAPABILITY ENGRAM_THREAD_ANNOTATION_(scoped_lockable)
#define ENGRAM_GUARDED_BY(x) ENGRAM_THREAD_ANNOTATION_(guarded_by(x))
#define ENGRAM_PT_GUARDED_BY(x) ENGRAM_THREAD_ANNOTATION_(pt_guarded_by(x))
#define ENGRAM_REQUIRES(...) ENGRAM_THREAD_ANNOTATION_(requires_capability(__VA_ARGS__))
#define ENGRAM_ACQUIRE(...) ENGRAM_THREAD_ANNOTATION_(acquire_capability(__VA_ARGS__))
#define ENGRAM_RELEASE(...) ENGRAM_THREAD_ANNOTATION_(release_capability(__VA_ARGS__))
#define ENGRAM_LOCKS_EXCLUDED(...) ENGRAM_THREAD_ANNOTATION_(locks_excluded(__VA_ARGS__))
#define ENGRAM_NO_THREAD_SAFETY_ANALYSIS ENGRAM_THREAD_ANNOTATION_(no_thread_safety_analysis)
