/* libFuzzer's entry points, declared once for every harness
 * (-Wmissing-prototypes): each tests/fuzz/fuzz_*.c defines the first, a
 * harness that needs set-up before its first input the second. */
#ifndef VEIL_FUZZER_H
#define VEIL_FUZZER_H

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#endif
