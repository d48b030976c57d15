/*
 * fuzz_hdf5.c -- libFuzzer target: the HDF5 dataset reader
 * (alig_dataset_load_hdf5), fuzzed STRUCTURED, not on raw bytes.
 *
 * The fuzzer's bytes are decoded into a description of a dataset file:
 * which objects exist under the names the reader looks up (a dataset, a
 * group, a soft link, a dangling link, nothing), each dataset's datatype
 * (u8, i8, u16, i32, i64, u64, f32, f64 in either byte order, strings,
 * enum, compound, bitfield, opaque), dataspace (scalar, null, rank 1..5),
 * dimensions (zeros, small, the reader's limits, and huge values whose
 * product overflows), maximum dimensions (fixed or unlimited), storage
 * (contiguous, compact, chunked, with deflate or Fletcher-32), a fill
 * value, how many rows are actually written and with which bytes (label
 * values out of range and negative included), attributes, one file or
 * two, the layout flag and the row limit. The file is built with the HDF5
 * API in /dev/shm and read back with the reader.
 *
 * Why not raw bytes: libhdf5 is not hardened against malicious files (it
 * has a long CVE list), so raw-byte fuzzing would find libhdf5's bugs --
 * not ours -- and turn CI red. Every file made here is valid HDF5; what
 * varies is what the reader itself must check. (docs/testing.md)
 *
 * Oracle, beyond "no crash, no sanitizer report, no leak, no HDF5 identifier
 * left open":
 *   - the status is ALIG_OK, ALIG_E_DATA or ALIG_E_MEMORY, and ALIG_OK
 *     exactly when the description is acceptable (docs/datasets.md:
 *     uint8 or float32, rank 3 or 4, 1..16 channels, sides up to 65536,
 *     at least one sample, integer labels (n) or (n, 1) as many as images,
 *     each in [0, 2^24], finite floats);
 *   - on error the dataset is empty and the message starts with a path;
 *   - on success the shape is the declared one (NHWC transposed), the
 *     samples and labels are what HDF5 itself reads back (written rows and
 *     fill values), and n_classes is 1 + the largest label.
 * A declaration of more than CAP_BYTES within the reader's limits is read
 * with a row limit (the reader would be right to fill gigabytes with fill
 * values, but slowly); beyond 2^40 values the reader must refuse before
 * allocating anything, so those are read whole.
 */
#include "alig/data.h"
#include "alig/error.h"

#include <hdf5.h>

#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#define CAP_BYTES ((uint64_t)1 << 20) /* most bytes of samples one input may make the reader read */
#define MAX_VALUES ((uint64_t)1 << 40)  /* the reader's own bound (data_hdf5.c H5_MAX_VALUES) */
#define WRITE_MAX ((uint64_t)1 << 16)   /* most bytes written into one dataset */

/* libhdf5 keeps free lists until exit (reachable, not leaks); our code is not in it */
const char *__lsan_default_suppressions(void) { return "leak:libhdf5\n"; }

/* ------------------------------------------------------------------------ */
/* reading the fuzzer's bytes */

typedef struct {
    const uint8_t *p;
    size_t n;
} in_t;

static unsigned byte_(in_t *in)
{
    if (!in->n)
        return 0;
    in->n--;
    return *in->p++;
}

/* A value in [0, bound); 0 once the input is used up. */
static unsigned pick_(in_t *in, unsigned bound)
{
    unsigned v = byte_(in);
    if (bound > 256)
        v = v << 8 | byte_(in);
    return bound ? v % bound : 0;
}

static uint64_t u64_(in_t *in)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | byte_(in);
    return v;
}

/* ------------------------------------------------------------------------ */
/* the description */

enum { T_U8, T_U8BE, T_I8, T_U16, T_I32, T_I64BE, T_U64, T_F32, T_F32BE, T_F64, T_STR, T_VSTR,
       T_ENUM, T_COMPOUND, T_B8, T_OPAQUE, N_TYPES };

enum { L_CONTIG, L_COMPACT, L_CHUNK, L_CHUNK_DEFLATE, L_CHUNK_FLETCHER, N_LAYOUTS };

typedef struct {
    int type;
    int space;          /* 0 simple, 1 scalar, 2 null */
    int rank;           /* simple: 1..5 */
    hsize_t dims[5], maxdims[5];
    int layout;
    int fill;           /* a fill value other than 0 */
    uint64_t rows;      /* rows written from the start (capped by WRITE_MAX) */
    int attr;           /* an attribute on the dataset */
} dset_t;

/* What is under a name the reader opens. */
enum { O_DATASET, O_MISSING, O_GROUP, O_SOFT, O_DANGLING, O_NESTED, N_OBJS };

static const hsize_t dim_palette_[] = {0,       1,         2,          3,        4,
                                       5,       16,        17,         28,       65536,
                                       65537,   1u << 31,  (1ull << 32) + 1, 1ull << 40,
                                       1ull << 62};

static hsize_t dim_(in_t *in)
{
    unsigned k = pick_(in, 32);
    if (k < sizeof dim_palette_ / sizeof dim_palette_[0])
        return dim_palette_[k];
    return 1 + pick_(in, 12); /* small */
}

static void describe_(in_t *in, dset_t *d, int labels)
{
    memset(d, 0, sizeof *d);
    /* mostly the accepted types, sometimes anything */
    unsigned t = pick_(in, 4);
    if (t == 0)
        d->type = (int)pick_(in, N_TYPES);
    else
        d->type = labels ? (t == 1 ? T_I64BE : t == 2 ? T_I32 : T_U8) : (t == 1 ? T_F32 : T_U8);
    unsigned sp = pick_(in, 16);
    d->space = sp == 0 ? 1 : sp == 1 ? 2 : 0;
    unsigned r = pick_(in, 8);
    d->rank = labels ? (r < 5 ? 1 : r < 7 ? 2 : 1 + (int)pick_(in, 5))
                     : (r < 3 ? 3 : r < 6 ? 4 : 1 + (int)pick_(in, 5));
    for (int i = 0; i < d->rank; i++) {
        d->dims[i] = dim_(in);
        d->maxdims[i] = pick_(in, 4) == 0 ? H5S_UNLIMITED : d->dims[i];
    }
    d->layout = (int)pick_(in, N_LAYOUTS);
    d->fill = pick_(in, 4) == 0;
    unsigned w = pick_(in, 4);
    d->rows = w == 0 ? 0 : w == 1 ? 1 : w == 2 ? 1 + pick_(in, 8) : UINT64_MAX;
    d->attr = pick_(in, 2);
}

static hid_t file_type_(int t)
{
    hid_t x = -1;
    switch (t) {
    case T_U8: return H5Tcopy(H5T_STD_U8LE);
    case T_U8BE: return H5Tcopy(H5T_STD_U8BE);
    case T_I8: return H5Tcopy(H5T_STD_I8LE);
    case T_U16: return H5Tcopy(H5T_STD_U16LE);
    case T_I32: return H5Tcopy(H5T_STD_I32LE);
    case T_I64BE: return H5Tcopy(H5T_STD_I64BE);
    case T_U64: return H5Tcopy(H5T_STD_U64LE);
    case T_F32: return H5Tcopy(H5T_IEEE_F32LE);
    case T_F32BE: return H5Tcopy(H5T_IEEE_F32BE);
    case T_F64: return H5Tcopy(H5T_IEEE_F64LE);
    case T_STR:
        x = H5Tcopy(H5T_C_S1);
        H5Tset_size(x, 4);
        return x;
    case T_VSTR:
        x = H5Tcopy(H5T_C_S1);
        H5Tset_size(x, H5T_VARIABLE);
        return x;
    case T_ENUM: {
        x = H5Tenum_create(H5T_NATIVE_UINT8);
        for (unsigned char v = 0; v < 4; v++) {
            char name[8];
            snprintf(name, sizeof name, "v%u", v);
            H5Tenum_insert(x, name, &v);
        }
        return x;
    }
    case T_COMPOUND:
        x = H5Tcreate(H5T_COMPOUND, 5);
        H5Tinsert(x, "a", 0, H5T_STD_U8LE);
        H5Tinsert(x, "b", 1, H5T_IEEE_F32LE);
        return x;
    case T_B8: return H5Tcopy(H5T_STD_B8LE);
    case T_OPAQUE:
        x = H5Tcreate(H5T_OPAQUE, 1);
        H5Tset_tag(x, "raw");
        return x;
    }
    return -1;
}

/* Elements of a simple dataspace, or 0 with *over set when the product passes 2^64. */
static uint64_t product_(const hsize_t *dims, int from, int to, int *over)
{
    uint64_t p = 1;
    for (int i = from; i < to; i++) {
        if (dims[i] && p > UINT64_MAX / dims[i]) {
            *over = 1;
            return 0;
        }
        p *= dims[i];
    }
    return p;
}

/* Create dataset `name` per d in loc; writes rows from the input's bytes. -1 when
 * HDF5 refuses the description (not interesting: the input is skipped). */
static int make_dataset_(hid_t loc, const char *name, const dset_t *d, in_t *in)
{
    int rc = -1;
    hid_t type = file_type_(d->type), space = -1, dcpl = H5Pcreate(H5P_DATASET_CREATE), ds = -1;
    size_t esize = type >= 0 ? H5Tget_size(type) : 0;
    if (type < 0 || dcpl < 0 || esize == 0 || esize > 64)
        goto out;
    if (d->space == 1)
        space = H5Screate(H5S_SCALAR);
    else if (d->space == 2)
        space = H5Screate(H5S_NULL);
    else
        space = H5Screate_simple(d->rank, d->dims, d->maxdims);
    if (space < 0)
        goto out;
    int over = 0;
    uint64_t elems = d->space ? 1 : product_(d->dims, 0, d->rank, &over);
    int unlimited = 0;
    for (int i = 0; d->space == 0 && i < d->rank; i++)
        unlimited |= d->maxdims[i] == H5S_UNLIMITED;
    int layout = d->layout;
    /* contiguous and compact storage is allocated whole: only for small datasets (and
     * libhdf5 1.10 itself mishandles a compact size that overflows: keep it far away) */
    if (!unlimited && layout == L_COMPACT && (over || elems > 16384 / esize))
        layout = L_CHUNK;
    if (!unlimited && layout == L_CONTIG && (over || elems > CAP_BYTES / esize))
        layout = L_CHUNK;
    if (unlimited || d->space)
        layout = d->space ? L_CONTIG : layout < L_CHUNK ? L_CHUNK : layout;
    if (layout == L_COMPACT) {
        H5Pset_layout(dcpl, H5D_COMPACT);
    } else if (layout >= L_CHUNK) {
        /* chunks of at most 4096 elements, covering whole trailing dimensions when they
         * fit: a write of a few rows then allocates about as many bytes as it writes (a
         * fill value fills every chunk it allocates), and a read touches few chunks
         * (libhdf5 spends time and memory per chunk; tiny chunks make a 1 MB read slow) */
        hsize_t chunk[5], rest = 1;
        for (int i = d->rank - 1; i >= 0; i--) {
            hsize_t extent = d->dims[i] ? d->dims[i] : 1, budget = 4096 / rest;
            chunk[i] = extent < budget ? extent : budget ? budget : 1;
            rest *= chunk[i];
        }
        if (H5Pset_chunk(dcpl, d->rank, chunk) < 0)
            goto out;
        if (layout == L_CHUNK_DEFLATE)
            H5Pset_deflate(dcpl, 1);
        else if (layout == L_CHUNK_FLETCHER)
            H5Pset_fletcher32(dcpl);
    }
    if (d->fill && d->type != T_VSTR) {
        unsigned char fill[64];
        memset(fill, 0x7f, sizeof fill);
        H5Pset_fill_value(dcpl, type, fill);
    }
    if (getenv("ALIG_FUZZ_VERBOSE")) {
        fprintf(stderr, "fuzz_hdf5: %s: type %d space %d layout %d fill %d rows %llu dims", name,
                d->type, d->space, layout, d->fill, (unsigned long long)d->rows);
        for (int i = 0; d->space == 0 && i < d->rank; i++)
            fprintf(stderr, " %llu%s", (unsigned long long)d->dims[i],
                    d->maxdims[i] == H5S_UNLIMITED ? "+" : "");
        fputc('\n', stderr);
    }
    ds = H5Dcreate2(loc, name, type, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    if (ds < 0)
        goto out;
    rc = 0;
    if (d->attr) {
        hid_t as = H5Screate(H5S_SCALAR);
        hid_t a = H5Acreate2(ds, "note", H5T_STD_I32LE, as, H5P_DEFAULT, H5P_DEFAULT);
        int v = (int)pick_(in, 1000);
        if (a >= 0) {
            H5Awrite(a, H5T_NATIVE_INT, &v);
            H5Aclose(a);
        }
        H5Sclose(as);
    }
    /* the first rows, from the input's bytes (repeated) */
    if (d->space || d->rank < 1 || d->rows == 0 || d->type == T_VSTR || over)
        goto out;
    uint64_t row_elems = product_(d->dims, 1, d->rank, &over);
    uint64_t rows = d->rows < d->dims[0] ? d->rows : d->dims[0];
    if (over || row_elems == 0 || rows == 0 || row_elems > WRITE_MAX / esize)
        goto out;
    if (rows > WRITE_MAX / (row_elems * esize))
        rows = WRITE_MAX / (row_elems * esize);
    size_t bytes = (size_t)(rows * row_elems * esize);
    unsigned char *buf = malloc(bytes);
    if (!buf)
        goto out;
    for (size_t i = 0; i < bytes; i++)
        buf[i] = in->n ? in->p[i % in->n] : (unsigned char)(i * 37);
    hsize_t start[5] = {0}, count[5];
    count[0] = rows;
    for (int i = 1; i < d->rank; i++)
        count[i] = d->dims[i];
    hid_t mem = H5Screate_simple(d->rank, count, NULL);
    if (mem >= 0 && H5Sselect_hyperslab(space, H5S_SELECT_SET, start, NULL, count, NULL) >= 0)
        H5Dwrite(ds, type, mem, space, H5P_DEFAULT, buf);
    if (mem >= 0)
        H5Sclose(mem);
    free(buf);
out:
    if (ds >= 0)
        H5Dclose(ds);
    if (space >= 0)
        H5Sclose(space);
    if (dcpl >= 0)
        H5Pclose(dcpl);
    if (type >= 0)
        H5Tclose(type);
    return rc;
}

/* Put object kind `obj` under `name`; the dataset itself (when there is one) at `target`. */
static int make_object_(hid_t file, int obj, const char *name, const dset_t *d, in_t *in)
{
    switch (obj) {
    case O_DATASET:
        return make_dataset_(file, name, d, in);
    case O_MISSING:
        return 0;
    case O_GROUP: {
        hid_t g = H5Gcreate2(file, name, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        if (g < 0)
            return -1;
        H5Gclose(g);
        return 0;
    }
    case O_SOFT: {
        char target[64];
        snprintf(target, sizeof target, "/target_%s", name);
        if (make_dataset_(file, target, d, in) < 0)
            return -1;
        return H5Lcreate_soft(target, file, name, H5P_DEFAULT, H5P_DEFAULT) < 0 ? -1 : 0;
    }
    case O_DANGLING:
        return H5Lcreate_soft("/nowhere", file, name, H5P_DEFAULT, H5P_DEFAULT) < 0 ? -1 : 0;
    }
    return -1;
}

/* ------------------------------------------------------------------------ */
/* the oracle */

static char path_a_[64], path_b_[64];

static void cleanup_(void)
{
    unlink(path_a_);
    unlink(path_b_);
}

/* Identifiers of a kind are numbered in sequence: create and close a dataspace, a
 * datatype and a property list before and after the reader, and every identifier of
 * those kinds numbered in between that is still valid was left open by the reader. */
static void probe_ids_(hid_t *id)
{
    id[0] = H5Screate(H5S_SCALAR);
    id[1] = H5Tcopy(H5T_NATIVE_INT);
    id[2] = H5Pcreate(H5P_FILE_ACCESS);
    H5Sclose(id[0]);
    H5Tclose(id[1]);
    H5Pclose(id[2]);
}

static int left_open_(const hid_t *before, const hid_t *after)
{
    int n = 0;
    for (int k = 0; k < 3; k++)
        for (hid_t id = before[k] + 1; id < after[k] && after[k] - before[k] < 100000; id++)
            n += H5Iis_valid(id) > 0;
    return n + (int)H5Fget_obj_count((hid_t)H5F_OBJ_ALL, H5F_OBJ_ALL);
}

static int accepted_image_type_(hid_t t)
{
    H5T_class_t c = H5Tget_class(t);
    size_t s = H5Tget_size(t);
    return (c == H5T_INTEGER && s == 1 && H5Tget_sign(t) == H5T_SGN_NONE) || (c == H5T_FLOAT && s == 4);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!path_a_[0]) {
        snprintf(path_a_, sizeof path_a_, "/dev/shm/alig-fuzz-hdf5-%d-a.h5", (int)getpid());
        snprintf(path_b_, sizeof path_b_, "/dev/shm/alig-fuzz-hdf5-%d-b.h5", (int)getpid());
        H5Eset_auto2(H5E_DEFAULT, NULL, NULL); /* the reader's expected failures print nothing */
        atexit(cleanup_);
        /* a backstop: a description that would write gigabytes into /dev/shm (a bug of
         * this harness) fails its writes with EFBIG instead of filling the machine */
        struct rlimit rl;
        if (getrlimit(RLIMIT_FSIZE, &rl) == 0) {
            rl.rlim_cur = (rlim_t)256 << 20;
            setrlimit(RLIMIT_FSIZE, &rl);
        }
        signal(SIGXFSZ, SIG_IGN);
    }
    in_t in = {data, size};
    dset_t di, dl;
    int obj_i = (int)pick_(&in, 12), obj_l = (int)pick_(&in, 12);
    obj_i = obj_i < N_OBJS ? obj_i : O_DATASET; /* mostly a dataset */
    obj_l = obj_l < N_OBJS ? obj_l : O_DATASET;
    int two_files = pick_(&in, 3) == 0, nhwc = (int)pick_(&in, 2);
    unsigned lk = pick_(&in, 4);
    int64_t limit = lk == 0 ? 0 : lk == 1 ? 1 : lk == 2 ? 1 + (int64_t)pick_(&in, 8)
                                                       : (int64_t)(u64_(&in) >> 1);
    describe_(&in, &di, 0);
    describe_(&in, &dl, 1);
    int root_attr = pick_(&in, 2);

    const char *xname = obj_i == O_NESTED ? "x/train" : "images";
    const char *yname = obj_l == O_NESTED ? "y/train" : "labels";
    if (obj_i == O_NESTED)
        obj_i = O_DATASET;
    if (obj_l == O_NESTED)
        obj_l = O_DATASET;

    /* keep the reading small: see the file comment */
    if (obj_i == O_DATASET || obj_i == O_SOFT) {
        int over = 0;
        uint64_t dim = di.space ? 0 : product_(di.dims, 1, di.rank, &over);
        uint64_t total = di.space ? 0 : di.dims[0];
        uint64_t esize = di.type == T_F32 || di.type == T_F32BE ? 4 : 1;
        int plausible = di.space == 0 && (di.rank == 3 || di.rank == 4) && !over && dim > 0 &&
                        total > 0;
        for (int i = 1; plausible && i < di.rank; i++)
            plausible = di.dims[i] <= 65536;
        if (plausible) {
            uint64_t n = limit > 0 && (uint64_t)limit < total ? (uint64_t)limit : total;
            if (n > MAX_VALUES / dim) {
                /* refused before any allocation */
            } else if (dim * esize > CAP_BYTES) {
                return 0; /* one sample beyond the cap: skip */
            } else if (n * dim * esize > CAP_BYTES) {
                limit = (int64_t)(CAP_BYTES / (dim * esize));
            }
        }
    }

    hid_t fa = H5Fcreate(path_a_, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (fa < 0)
        abort();
    hid_t fb = two_files ? H5Fcreate(path_b_, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT) : fa;
    if (fb < 0)
        abort();
    int ok = 1;
    if (!strcmp(xname, "x/train") || !strcmp(yname, "y/train")) {
        hid_t g = H5Gcreate2(fa, !strcmp(xname, "x/train") ? "x" : "y", H5P_DEFAULT, H5P_DEFAULT,
                             H5P_DEFAULT);
        ok = g >= 0;
        if (g >= 0)
            H5Gclose(g);
        if (ok && two_files && !strcmp(yname, "y/train")) {
            g = H5Gcreate2(fb, "y", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
            ok = g >= 0;
            if (g >= 0)
                H5Gclose(g);
        }
    }
    ok = ok && make_object_(fa, obj_i, xname, &di, &in) == 0;
    /* the labels may be the images dataset itself ("labels" a soft link to it) */
    ok = ok && make_object_(fb, obj_l, yname, &dl, &in) == 0;
    if (ok && root_attr) {
        hid_t as = H5Screate(H5S_SCALAR);
        hid_t a = H5Acreate2(fa, "title", H5T_STD_I64LE, as, H5P_DEFAULT, H5P_DEFAULT);
        if (a >= 0)
            H5Aclose(a);
        H5Sclose(as);
    }
    if (fb != fa)
        H5Fclose(fb);
    H5Fclose(fa);
    if (!ok)
        return 0; /* HDF5 refused the description */
    const char *ypath = two_files ? path_b_ : path_a_;

    alig_dataset_t ds;
    memset(&ds, 0xa5, sizeof ds);
    hid_t ids_before[3], ids_after[3];
    probe_ids_(ids_before);
    int rc = alig_dataset_load_hdf5(&ds, path_a_, xname, ypath, yname, nhwc, limit);
    probe_ids_(ids_after);
    if (left_open_(ids_before, ids_after)) {
        fprintf(stderr, "fuzz_hdf5: the reader left HDF5 identifiers open (status %d)\n", rc);
        abort(); /* every file, dataspace, datatype and property list closed */
    }
    if (getenv("ALIG_FUZZ_VERBOSE")) /* to see what a seed or a crash input does */
        fprintf(stderr, "fuzz_hdf5: %s, '%s' in %s, '%s' in %s, nhwc %d, limit %lld: %d %s\n",
                two_files ? "two files" : "one file", xname, path_a_, yname, ypath, nhwc,
                (long long)limit, rc, rc ? alig_error_message() : "ok");
    if (rc != ALIG_OK && rc != ALIG_E_DATA && rc != ALIG_E_MEMORY)
        abort();
    if (rc != ALIG_OK) {
        const char *msg = alig_error_message();
        if (ds.x || ds.xf || ds.y || ds.n)
            abort(); /* an error leaves nothing behind */
        if (rc == ALIG_E_DATA && strncmp(msg, path_a_, strlen(path_a_)) != 0 &&
            strncmp(msg, ypath, strlen(ypath)) != 0)
            abort(); /* every data error names the file first */
    }

    /* what HDF5 itself says, for the oracle */
    hid_t f = H5Fopen(path_a_, H5F_ACC_RDONLY, H5P_DEFAULT);
    hid_t g = two_files ? H5Fopen(ypath, H5F_ACC_RDONLY, H5P_DEFAULT) : f;
    if (f < 0 || g < 0)
        abort();
    hid_t xi = H5Dopen2(f, xname, H5P_DEFAULT), yi = H5Dopen2(g, yname, H5P_DEFAULT);
    int expect = xi >= 0 && yi >= 0, rank = -1, lrank = -1;
    hsize_t dims[8] = {0}, ldims[8] = {0};
    hid_t xt = -1, yt = -1, xs = -1, ys = -1;
    if (expect) {
        xt = H5Dget_type(xi);
        yt = H5Dget_type(yi);
        xs = H5Dget_space(xi);
        ys = H5Dget_space(yi);
        rank = H5Sget_simple_extent_ndims(xs);
        lrank = H5Sget_simple_extent_ndims(ys);
        if (rank >= 0 && rank <= 8)
            H5Sget_simple_extent_dims(xs, dims, NULL);
        if (lrank >= 0 && lrank <= 8)
            H5Sget_simple_extent_dims(ys, ldims, NULL);
        expect = accepted_image_type_(xt) && (rank == 3 || rank == 4) &&
                 H5Tget_class(yt) == H5T_INTEGER &&
                 (lrank == 1 || (lrank == 2 && ldims[1] == 1)) && ldims[0] == dims[0] &&
                 dims[0] >= 1;
    }
    uint64_t c = 0, h = 0, w = 0, n = 0, dim = 0;
    if (expect) {
        c = rank == 3 ? 1 : nhwc ? dims[3] : dims[1];
        h = rank == 3 ? dims[1] : nhwc ? dims[1] : dims[2];
        w = rank == 3 ? dims[2] : nhwc ? dims[2] : dims[3];
        expect = c >= 1 && c <= ALIG_MAX_CHANNELS && h >= 1 && h <= 65536 && w >= 1 &&
                 w <= 65536;
        n = limit > 0 && (uint64_t)limit < dims[0] ? (uint64_t)limit : dims[0];
        dim = c * h * w;
        expect = expect && n <= MAX_VALUES / dim;
    }
    /* read the first n rows as the reader should, in the file's order */
    int is_u8 = 0;
    void *want = NULL;
    int64_t *labels = NULL;
    if (expect) {
        is_u8 = H5Tget_class(xt) == H5T_INTEGER;
        size_t es = is_u8 ? 1 : 4;
        want = malloc((size_t)(n * dim) * es);
        labels = malloc(sizeof(int64_t) * (size_t)n);
        if (!want || !labels)
            abort();
        hsize_t start[4] = {0}, count[4] = {n, dims[1], dims[2], dims[3]};
        hsize_t lstart[2] = {0}, lcount[2] = {n, 1};
        hid_t m1 = H5Screate_simple(rank, count, NULL), m2 = H5Screate_simple(lrank, lcount, NULL);
        expect = H5Sselect_hyperslab(xs, H5S_SELECT_SET, start, NULL, count, NULL) >= 0 &&
                 H5Dread(xi, is_u8 ? H5T_NATIVE_UINT8 : H5T_NATIVE_FLOAT, m1, xs, H5P_DEFAULT,
                         want) >= 0 &&
                 H5Sselect_hyperslab(ys, H5S_SELECT_SET, lstart, NULL, lcount, NULL) >= 0 &&
                 H5Dread(yi, H5T_NATIVE_INT64, m2, ys, H5P_DEFAULT, labels) >= 0;
        H5Sclose(m1);
        H5Sclose(m2);
        for (uint64_t i = 0; expect && i < n; i++)
            expect = labels[i] >= 0 && labels[i] <= (1 << 24);
        for (uint64_t i = 0; expect && !is_u8 && i < n * dim; i++)
            expect = isfinite(((float *)want)[i]);
    }
    if (rc == ALIG_E_MEMORY) {
        /* allowed only for what is really large */
    } else if (expect != (rc == ALIG_OK)) {
        fprintf(stderr, "fuzz_hdf5: reader says %d (%s), the description says %s\n", rc,
                rc ? alig_error_message() : "ok", expect ? "acceptable" : "unacceptable");
        abort();
    }
    if (rc == ALIG_OK) {
        if ((uint64_t)ds.n != n || (uint64_t)ds.c != c || (uint64_t)ds.h != h ||
            (uint64_t)ds.w != w || (uint64_t)ds.dim != dim || !ds.y || !(ds.x || ds.xf) ||
            (ds.x && ds.xf) || !is_u8 != !ds.x)
            abort();
        int64_t maxl = 0;
        for (uint64_t i = 0; i < n; i++) {
            if (ds.y[i] != labels[i])
                abort();
            maxl = labels[i] > maxl ? labels[i] : maxl;
        }
        if (ds.n_classes != maxl + 1)
            abort();
        /* sample s, channel ch, pixel q of the reader against the file's order */
        uint64_t hw = h * w;
        for (uint64_t s = 0; s < n; s++)
            for (uint64_t ch = 0; ch < c; ch++)
                for (uint64_t q = 0; q < hw; q++) {
                    uint64_t mine = (s * c + ch) * hw + q;
                    uint64_t file = rank == 4 && nhwc ? (s * hw + q) * c + ch : mine;
                    if (is_u8 ? ds.x[mine] != ((uint8_t *)want)[file]
                              : memcmp(&ds.xf[mine], (float *)want + file, 4) != 0)
                        abort();
                }
        alig_dataset_free(&ds);
    }
    free(want);
    free(labels);
    if (xt >= 0)
        H5Tclose(xt);
    if (yt >= 0)
        H5Tclose(yt);
    if (xs >= 0)
        H5Sclose(xs);
    if (ys >= 0)
        H5Sclose(ys);
    if (xi >= 0)
        H5Dclose(xi);
    if (yi >= 0)
        H5Dclose(yi);
    if (g != f)
        H5Fclose(g);
    H5Fclose(f);
    return 0;
}
