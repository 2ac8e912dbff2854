/*
 * sanitize.c: linked only into SANITIZE=1 builds (AddressSanitizer and
 * UBSan, for tests, never installed): the runtime's defaults, which
 * ASAN_OPTIONS and UBSAN_OPTIONS still override.
 *
 * A report from inside the sandbox must reach stderr whole, then exit 1:
 * - symbolize=0: ASan would look for llvm-symbolizer (stat()) and start
 *   it, calls that seccomp kills the helper for halfway through the
 *   report. Frames print
 *   as (binary+offset); `llvm-symbolizer -e priv/epcapd OFFSET` names them.
 * - color=never: deciding on colour asks whether stderr is a terminal, an
 *   ioctl() that seccomp does not allow.
 * - detect_leaks=0: LeakSanitizer stops the world with ptrace from a
 *   clone()d thread, which neither the sandbox nor a setuid or
 *   capability-bearing process allows.
 * - max_allocation_size_mb and allocator_may_return_null stand in for
 *   RLIMIT_DATA, which ASan's shadow memory cannot live under (rlimits.c):
 *   an allocation above EPCAPD_MAX_HEAP fails, as it would in the normal
 *   build, and the helper reports it as it would there.
 */
#include "epcapd.h"

_Static_assert(EPCAPD_MAX_HEAP == 256UL * 1024 * 1024,
               "max_allocation_size_mb below is EPCAPD_MAX_HEAP");

const char *__asan_default_options(void);
const char *__ubsan_default_options(void);

const char *__asan_default_options(void)
{
    return "detect_leaks=0:symbolize=0:color=never:allocator_may_return_null=1"
           ":max_allocation_size_mb=256";
}

const char *__ubsan_default_options(void)
{
    return "symbolize=0:color=never:print_stacktrace=1";
}
