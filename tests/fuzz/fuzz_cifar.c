/*
 * fuzz_cifar.c -- libFuzzer target: the CIFAR-10 and CIFAR-100 binary
 * readers on arbitrary bytes (raw or gzip). Any input must give ALIG_OK or
 * ALIG_E_DATA (ALIG_E_MEMORY past the fuzzer's memory limit), never a
 * crash or a sanitizer report; an accepted file must have labels in range.
 */
#include "alig/data.h"
#include "alig/error.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static char path_[64];

/* the scratch file goes when libFuzzer exits (-max_total_time ends with exit()) */
static void cleanup_(void) { unlink(path_); }

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!path_[0]) {
        snprintf(path_, sizeof path_, "/dev/shm/alig-fuzz-cifar-%d.bin", (int)getpid());
        atexit(cleanup_);
    }
    FILE *f = fopen(path_, "wb");
    if (!f)
        abort();
    fwrite(data, 1, size, f);
    fclose(f);
    static const int classes[2] = {10, 100};
    for (int i = 0; i < 2; i++) {
        alig_dataset_t ds;
        int rc = alig_dataset_load_cifar(&ds, path_, classes[i], 1, 0);
        if (rc == ALIG_OK) {
            if (ds.n < 1 || ds.c != 3 || ds.h != 32 || ds.w != 32)
                abort();
            for (int64_t k = 0; k < ds.n; k++)
                if (ds.y[k] < 0 || ds.y[k] >= classes[i])
                    abort();
            alig_dataset_free(&ds);
        } else if (rc != ALIG_E_DATA && rc != ALIG_E_MEMORY) {
            abort();
        }
    }
    return 0;
}
