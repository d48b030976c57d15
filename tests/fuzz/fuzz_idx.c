/*
 * fuzz_idx.c -- libFuzzer target: the IDX reader (raw and gzip) and
 * dataset loading. Any input must give ALIG_OK or ALIG_E_DATA (or
 * ALIG_E_MEMORY for a header asking for more than the fuzzer's memory),
 * never a crash or a sanitizer report.
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
        snprintf(path_, sizeof path_, "/dev/shm/alig-fuzz-idx-%d", (int)getpid());
        atexit(cleanup_);
    }
    FILE *f = fopen(path_, "wb");
    if (!f)
        abort();
    fwrite(data, 1, size, f);
    fclose(f);
    alig_idx_t idx;
    int rc = alig_idx_read(path_, &idx);
    if (rc == ALIG_OK) {
        int64_t n = 1;
        for (int i = 0; i < idx.ndim; i++)
            n *= idx.dims[i];
        if (n != idx.count)
            abort();
        volatile uint8_t sink = idx.count ? idx.data[idx.count - 1] : 0; /* ASan checks the extent */
        (void)sink;
        alig_idx_free(&idx);
    } else if (rc != ALIG_E_DATA && rc != ALIG_E_MEMORY) {
        abort();
    }
    /* the same bytes as images and as labels of one dataset */
    alig_dataset_t ds;
    rc = alig_dataset_load_idx(&ds, path_, path_, 0);
    if (rc == ALIG_OK)
        alig_dataset_free(&ds);
    else if (rc != ALIG_E_DATA && rc != ALIG_E_MEMORY)
        abort();
    return 0;
}
