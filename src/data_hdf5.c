/*
 * data_hdf5.c -- a generic HDF5 image dataset (alig/data.h).
 *
 * Images: one dataset of uint8 or float32, (n, h, w), (n, c, h, w) or
 * (n, h, w, c); labels: one integer dataset (n) or (n, 1), in the same file
 * or another. Only the first `limit` rows are read (a hyperslab), so a
 * quick run on a large file stays quick. Every defect is ALIG_E_DATA naming
 * the file (once) and the dataset; HDF5's own error printing is off for the
 * whole call, and every identifier is closed on every path (files with a
 * strong close degree as a safety net; tests/check_datasets.c and
 * tests/fuzz/fuzz_hdf5.c check that none is left open).
 */
#include "alig/data.h"
#include "alig/error.h"
#include "data-impl.h"

#include <hdf5.h>

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define H5_MAX_VALUES ((int64_t)1 << 40)

static int open_file_(const char *path, hid_t *fid)
{
    if (access(path, R_OK) != 0)
        return alig_fail(ALIG_E_DATA, "%s: cannot open: %s", path, strerror(errno));
    if (alig_data_regular(path))
        return ALIG_E_DATA;
    /* strong close: H5Fclose releases everything of the file even if a handle
     * were left open on some error path; no file locks (read-only, and locks fail
     * on some parallel file systems) */
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    H5E_BEGIN_TRY
    {
        if (fapl >= 0) {
            H5Pset_fclose_degree(fapl, H5F_CLOSE_STRONG);
#if H5_VERSION_GE(1, 10, 7)
            H5Pset_file_locking(fapl, 0, 1);
#endif
        }
        *fid = H5Fopen(path, H5F_ACC_RDONLY, fapl >= 0 ? fapl : H5P_DEFAULT);
    }
    H5E_END_TRY;
    if (fapl >= 0)
        H5Pclose(fapl);
    if (*fid < 0)
        return alig_fail(ALIG_E_DATA, "%s: not an HDF5 file (or damaged)", path);
    return ALIG_OK;
}

/* "images, labels, x_train" -- the top-level names, for a "no such dataset" hint. */
struct names_ {
    char buf[256];
    size_t used;
};

static herr_t add_name_(hid_t g, const char *name, const H5L_info_t *info, void *data)
{
    (void)g;
    (void)info;
    struct names_ *n = data;
    if (n->used < sizeof n->buf) {
        int w = snprintf(n->buf + n->used, sizeof n->buf - n->used, "%s%s", n->used ? ", " : "",
                         name);
        n->used += w > 0 ? (size_t)w : 0;
    }
    return 0;
}

static int open_dataset_(hid_t fid, const char *path, const char *name, const char *key,
                         hid_t *did)
{
    H5E_BEGIN_TRY
    {
        *did = H5Dopen2(fid, name, H5P_DEFAULT);
    }
    H5E_END_TRY;
    if (*did >= 0)
        return ALIG_OK;
    /* the name is there but is no dataset, or its header is damaged */
    hid_t obj;
    H5E_BEGIN_TRY
    {
        obj = H5Lexists(fid, name, H5P_DEFAULT) > 0 ? H5Oopen(fid, name, H5P_DEFAULT) : -2;
    }
    H5E_END_TRY;
    if (obj != -2) {
        H5I_type_t type = obj >= 0 ? H5Iget_type(obj) : H5I_BADID;
        if (obj >= 0)
            H5Oclose(obj);
        H5L_info_t link;
        herr_t e;
        H5E_BEGIN_TRY
        {
            e = H5Lget_info(fid, name, &link, H5P_DEFAULT);
        }
        H5E_END_TRY;
        int dangling = obj < 0 && e >= 0 && link.type != H5L_TYPE_HARD;
        return alig_fail(ALIG_E_DATA, "%s: '%s' ([data] %s) %s", path, name, key,
                         type == H5I_GROUP      ? "is a group, not a dataset"
                         : type == H5I_DATATYPE ? "is a named datatype, not a dataset"
                         : dangling             ? "is a link to an object that does not exist"
                                                : "cannot be opened as a dataset (damaged file?)");
    }
    struct names_ n = {.used = 0};
    n.buf[0] = '\0';
    herr_t listed;
    H5E_BEGIN_TRY
    {
        listed = H5Literate(fid, H5_INDEX_NAME, H5_ITER_NATIVE, NULL, add_name_, &n);
    }
    H5E_END_TRY;
    if (listed < 0 && !n.buf[0])
        return alig_fail(ALIG_E_DATA,
                         "%s: no dataset '%s' ([data] %s), and the file's top level cannot be "
                         "listed (damaged file?)",
                         path, name, key);
    return alig_fail(ALIG_E_DATA, "%s: no dataset '%s' ([data] %s); the file has: %s", path, name,
                     key, n.buf[0] ? n.buf : "nothing at the top level");
}

/*
 * After H5Dread failed on did ('name' of path, a `what`): ALIG_E_DATA saying which
 * filter of the dataset's pipeline this libhdf5 lacks, if one does, else ALIG_OK and
 * the caller says it cannot read. h5py's compression='lzf' is part of h5py, not of
 * libhdf5; a new-user trial's LZF file was reported as "damaged file?".
 */
static int missing_filter_(hid_t did, const char *path, const char *what, const char *name)
{
    hid_t dcpl = H5Dget_create_plist(did);
    int nfilters = dcpl >= 0 ? H5Pget_nfilters(dcpl) : -1;
    int rc = ALIG_OK;
    for (int i = 0; i < nfilters && !rc; i++) {
        unsigned flags = 0, config = 0;
        size_t nvalues = 0;
        char fname[80] = "";
        H5Z_filter_t id = H5Pget_filter2(dcpl, (unsigned)i, &flags, &nvalues, NULL, sizeof fname,
                                         fname, &config);
        fname[sizeof fname - 1] = '\0';
        if (id >= 0 && H5Zfilter_avail(id) == 0) /* < 0: unknown, not a reason we know */
            rc = alig_fail(ALIG_E_DATA,
                           "%s: %s '%s' is compressed with filter %d%s%s%s, which this HDF5 "
                           "library does not have; expected a filter it has (h5py: "
                           "compression='gzip' or none), or the filter's plugin on "
                           "HDF5_PLUGIN_PATH",
                           path, what, name, (int)id, fname[0] ? " (" : "", fname,
                           fname[0] ? ")" : "");
    }
    if (dcpl >= 0)
        H5Pclose(dcpl);
    return rc;
}

static int load_(alig_dataset_t *ds, const char *images_path, const char *images_name,
                 const char *labels_path, const char *labels_name, int nhwc, int64_t limit,
                 const char *const keys[2])
{
    memset(ds, 0, sizeof *ds);
    hid_t fi = -1, fl = -1, di = -1, dl = -1, ti = -1, tl = -1, si = -1, sl = -1, mem = -1;
    int64_t *labels = NULL;
    void *raw = NULL;
    int rc = open_file_(images_path, &fi);
    if (!rc)
        rc = open_dataset_(fi, images_path, images_name, keys[0], &di);
    if (rc)
        goto done;

    /* element type */
    ti = H5Dget_type(di);
    H5T_class_t cls = H5Tget_class(ti);
    size_t esize = H5Tget_size(ti);
    int is_u8 = cls == H5T_INTEGER && esize == 1 && H5Tget_sign(ti) == H5T_SGN_NONE;
    int is_f32 = cls == H5T_FLOAT && esize == 4;
    if (!is_u8 && !is_f32) {
        const char *cname = cls == H5T_INTEGER ? (H5Tget_sign(ti) == H5T_SGN_NONE ? "unsigned integer"
                                                                                 : "signed integer")
                            : cls == H5T_FLOAT ? "float"
                            : cls == H5T_STRING ? "string"
                                                : "compound or other";
        rc = alig_fail(ALIG_E_DATA,
                       "%s: dataset '%s' holds %zu-byte %s values; expected uint8 or float32",
                       images_path, images_name, esize, cname);
        goto done;
    }

    /* shape */
    si = H5Dget_space(di);
    int rank = H5Sget_simple_extent_ndims(si);
    hsize_t dims[4] = {0, 0, 0, 0};
    if (rank != 3 && rank != 4) {
        rc = alig_fail(ALIG_E_DATA,
                       "%s: dataset '%s' has %d dimensions; expected 3 (n, h, w) or 4 (n, c, h, "
                       "w) / (n, h, w, c)",
                       images_path, images_name, rank);
        goto done;
    }
    H5Sget_simple_extent_dims(si, dims, NULL);
    int64_t total = (int64_t)dims[0];
    int64_t c = rank == 3 ? 1 : (int64_t)(nhwc ? dims[3] : dims[1]);
    int64_t h = (int64_t)(rank == 3 ? dims[1] : nhwc ? dims[1] : dims[2]);
    int64_t w = (int64_t)(rank == 3 ? dims[2] : nhwc ? dims[2] : dims[3]);
    if (total < 1 || c < 1 || h < 1 || w < 1 || c > ALIG_MAX_CHANNELS || h > 65536 || w > 65536) {
        rc = alig_fail(ALIG_E_DATA,
                       "%s: dataset '%s' is %lld samples of %lldx%lldx%lld (c x h x w, layout %s); "
                       "expected at least one sample, 1 to %d channels and sides up to 65536%s",
                       images_path, images_name, (long long)total, (long long)c, (long long)h,
                       (long long)w, rank == 3 ? "n,h,w" : nhwc ? "nhwc" : "nchw",
                       ALIG_MAX_CHANNELS,
                       rank == 4 && c > ALIG_MAX_CHANNELS ? " (wrong [data] hdf5_layout?)" : "");
        goto done;
    }
    int64_t n = limit > 0 && limit < total ? limit : total;
    int64_t dim = c * h * w;
    if (n > H5_MAX_VALUES / dim) {
        rc = alig_fail(ALIG_E_DATA, "%s: dataset '%s' is too large (%lld values)", images_path,
                       images_name, (long long)(n * dim));
        goto done;
    }

    /* the first n rows */
    hsize_t start[4] = {0, 0, 0, 0}, count[4] = {(hsize_t)n, dims[1], dims[2], dims[3]};
    mem = H5Screate_simple(rank, count, NULL);
    raw = alig_malloc((size_t)(n * dim) * (is_u8 ? 1 : sizeof(float)), images_path);
    if (!raw) {
        rc = ALIG_E_MEMORY;
        goto done;
    }
    herr_t e;
    H5E_BEGIN_TRY
    {
        e = H5Sselect_hyperslab(si, H5S_SELECT_SET, start, NULL, count, NULL);
        if (e >= 0)
            e = H5Dread(di, is_u8 ? H5T_NATIVE_UINT8 : H5T_NATIVE_FLOAT, mem, si, H5P_DEFAULT, raw);
    }
    H5E_END_TRY;
    if (e < 0) {
        rc = missing_filter_(di, images_path, "dataset", images_name);
        if (!rc)
            rc = alig_fail(ALIG_E_DATA, "%s: cannot read dataset '%s' (damaged file?)",
                           images_path, images_name);
        goto done;
    }

    /* labels */
    if (strcmp(labels_path, images_path) == 0) {
        fl = fi;
    } else {
        rc = open_file_(labels_path, &fl);
        if (rc)
            goto done;
    }
    rc = open_dataset_(fl, labels_path, labels_name, keys[1], &dl);
    if (rc)
        goto done;
    tl = H5Dget_type(dl);
    sl = H5Dget_space(dl);
    int lrank = H5Sget_simple_extent_ndims(sl);
    hsize_t ldims[2] = {0, 0};
    if (lrank == 1 || lrank == 2)
        H5Sget_simple_extent_dims(sl, ldims, NULL);
    if (H5Tget_class(tl) != H5T_INTEGER || (lrank != 1 && !(lrank == 2 && ldims[1] == 1))) {
        rc = alig_fail(ALIG_E_DATA,
                       "%s: labels dataset '%s' must hold integers shaped (n) or (n, 1); it has "
                       "%s values in %d dimension%s",
                       labels_path, labels_name,
                       H5Tget_class(tl) == H5T_INTEGER ? "integer" : "non-integer", lrank,
                       lrank == 1 ? "" : "s");
        goto done;
    }
    if ((int64_t)ldims[0] != total) {
        rc = alig_fail(ALIG_E_DATA, "%s: '%s' has %lld images but %s: '%s' has %lld labels",
                       images_path, images_name, (long long)total, labels_path, labels_name,
                       (long long)ldims[0]);
        goto done;
    }
    labels = alig_malloc(sizeof(int64_t) * (size_t)n, "labels");
    if (!labels) {
        rc = ALIG_E_MEMORY;
        goto done;
    }
    hsize_t lstart[2] = {0, 0}, lcount[2] = {(hsize_t)n, 1};
    int uns = H5Tget_sign(tl) == H5T_SGN_NONE;
    H5Sclose(mem);
    mem = H5Screate_simple(lrank, lcount, NULL);
    H5E_BEGIN_TRY
    {
        e = H5Sselect_hyperslab(sl, H5S_SELECT_SET, lstart, NULL, lcount, NULL);
        /* HDF5 converts any integer type to int64 or uint64; unsigned labels are read
         * as uint64, which would saturate at INT64_MAX as int64 (and be misreported) */
        if (e >= 0)
            e = H5Dread(dl, uns ? H5T_NATIVE_UINT64 : H5T_NATIVE_INT64, mem, sl, H5P_DEFAULT,
                        labels);
    }
    H5E_END_TRY;
    if (e < 0) {
        rc = missing_filter_(dl, labels_path, "labels dataset", labels_name);
        if (!rc)
            rc = alig_fail(ALIG_E_DATA, "%s: cannot read labels dataset '%s'", labels_path,
                           labels_name);
        goto done;
    }
    ds->y = alig_malloc(sizeof(int32_t) * (size_t)n, "labels");
    if (!ds->y) {
        rc = ALIG_E_MEMORY;
        goto done;
    }
    int64_t maxlabel = 0;
    for (int64_t i = 0; i < n; i++) {
        uint64_t u = (uint64_t)labels[i]; /* the bits H5Dread wrote when uns */
        if (uns ? u > (1u << 24) : labels[i] < 0 || labels[i] > (1 << 24)) {
            char v[32];
            if (uns)
                snprintf(v, sizeof v, "%llu", (unsigned long long)u);
            else
                snprintf(v, sizeof v, "%lld", (long long)labels[i]);
            rc = alig_fail(ALIG_E_DATA,
                           "%s: labels dataset '%s': label %s of sample %lld is out of range "
                           "[0, %d]",
                           labels_path, labels_name, v, (long long)i, 1 << 24);
            goto done;
        }
        ds->y[i] = (int32_t)labels[i];
        if (labels[i] > maxlabel)
            maxlabel = labels[i];
    }

    /* to NCHW */
    size_t es = is_u8 ? 1 : sizeof(float);
    void *x = raw;
    if (rank == 4 && nhwc && c > 1) {
        x = alig_malloc((size_t)(n * dim) * es, images_path);
        if (!x) {
            rc = ALIG_E_MEMORY;
            goto done;
        }
        int64_t hw = h * w;
        for (int64_t s = 0; s < n; s++)
            for (int64_t q = 0; q < hw; q++)
                for (int64_t ch = 0; ch < c; ch++)
                    memcpy((char *)x + ((s * c + ch) * hw + q) * (int64_t)es,
                           (char *)raw + ((s * hw + q) * c + ch) * (int64_t)es, es);
        free(raw);
        raw = NULL;
    } else {
        raw = NULL;
    }
    if (is_u8) {
        ds->x = x;
    } else {
        ds->xf = x;
        for (int64_t i = 0; i < n * dim; i++)
            if (!isfinite(ds->xf[i])) {
                rc = alig_fail(ALIG_E_DATA, "%s: dataset '%s': sample %lld holds a non-finite value",
                               images_path, images_name, (long long)(i / dim));
                goto done;
            }
    }
    ds->n = n;
    ds->c = (int)c;
    ds->h = (int)h;
    ds->w = (int)w;
    ds->dim = dim;
    ds->n_classes = (int)maxlabel + 1;
    for (int ch = 0; ch < ALIG_MAX_CHANNELS; ch++) {
        ds->mean[ch] = 0.0f;
        ds->std[ch] = 1.0f;
    }

done:
    free(raw);
    free(labels);
    if (mem >= 0)
        H5Sclose(mem);
    if (si >= 0)
        H5Sclose(si);
    if (sl >= 0)
        H5Sclose(sl);
    if (ti >= 0)
        H5Tclose(ti);
    if (tl >= 0)
        H5Tclose(tl);
    if (di >= 0)
        H5Dclose(di);
    if (dl >= 0)
        H5Dclose(dl);
    if (fl >= 0 && fl != fi)
        H5Fclose(fl);
    if (fi >= 0)
        H5Fclose(fi);
    if (rc)
        alig_dataset_free(ds);
    return rc;
}

int alig_dataset_load_hdf5_as(alig_dataset_t *ds, const char *images_path,
                              const char *images_name, const char *labels_path,
                              const char *labels_name, int nhwc, int64_t limit,
                              const char *const keys[2])
{
    /* every failure becomes one alig_fail message: libhdf5 prints nothing (a damaged
     * file would otherwise add its error stack after ours), whatever handler was set
     * before is restored */
    H5E_auto2_t func = NULL;
    void *data = NULL;
    H5Eget_auto2(H5E_DEFAULT, &func, &data);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    int rc = load_(ds, images_path, images_name, labels_path, labels_name, nhwc, limit, keys);
    H5Eset_auto2(H5E_DEFAULT, func, data);
    return rc;
}

int alig_dataset_load_hdf5(alig_dataset_t *ds, const char *images_path, const char *images_name,
                           const char *labels_path, const char *labels_name, int nhwc,
                           int64_t limit)
{
    static const char *const keys[2] = {"hdf5_images", "hdf5_labels"};
    return alig_dataset_load_hdf5_as(ds, images_path, images_name, labels_path, labels_name, nhwc,
                                     limit, keys);
}
