/*
 * ckpt_h5.c -- one checkpoint file: the HDF5 layout of docs/checkpoint-format.md,
 * written (alig_ckpt_write_file) and read back with every integrity check
 * (alig_ckpt_read_file, alig_ckpt_load_params). No MPI, no directory logic:
 * src/ckpt.c builds the save protocol and resume on top of this.
 *
 * Sections (greppable): @@H5 error capture and typed helpers, @@WRITE one
 * file, @@READ one file with validation.
 */
#include "alig/ckpt.h"
#include "ckpt-impl.h" /* defines: alig_ckpt_config_text_ */

#include "alig/comm.h"
#include "alig/error.h"

#include <cblas.h>
#include <hdf5.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Largest chunk of a tensor dataset. Fletcher-32 covers one chunk; 1 MiB
 * keeps a detected corruption local and the filter buffers small. */
#define CHUNK_BYTES ((size_t)1 << 20)
/* Longest dataset path "/optim/momentum/<tensor name>" */
#define DSET_MAX (ALIG_NAME_MAX + 32)

/* ------------------------------------------------------------------------ */
/* @@H5 error capture and typed helpers */

typedef struct {
    char desc[512];
    int n;
} h5_walk_t;

static herr_t h5_walk_(unsigned n, const H5E_error2_t *e, void *data)
{
    h5_walk_t *w = data;
    /* walking downward, the last entry is where the error was detected */
    snprintf(w->desc, sizeof w->desc, "%s", e->desc ? e->desc : "");
    w->n = (int)n + 1;
    return 0;
}

/* The reason of the last failed HDF5 call. Recorded the moment the call
 * fails, because the next HDF5 call (a close, say) clears the error stack. */
static char h5_last_[512];

/* HDF5's "automatic" error handler, called when an API call fails: keep the
 * innermost error, shortened (an OS error becomes its strerror text), and
 * print nothing -- each failure becomes one alig_fail message instead. */
static herr_t h5_record_(hid_t stack, void *data)
{
    (void)data;
    h5_walk_t w;
    memset(&w, 0, sizeof w);
    H5Ewalk2(stack, H5E_WALK_DOWNWARD, h5_walk_, &w);
    const char *key = "error message = '";
    const char *m = strstr(w.desc, key);
    if (m) {
        m += strlen(key);
        snprintf(h5_last_, sizeof h5_last_, "%.*s", (int)strcspn(m, "'"), m);
    } else if (w.n) {
        snprintf(h5_last_, sizeof h5_last_, "%s", w.desc);
    }
    return 0;
}

/* Each public function that calls HDF5 installs h5_record_ on entry and
 * puts back whatever handler was set (by HDF5 or another module) on exit. */
typedef struct {
    H5E_auto2_t func;
    void *data;
} h5_handler_t;

static h5_handler_t h5_enter_(void)
{
    h5_handler_t old = {NULL, NULL};
    H5Eget_auto2(H5E_DEFAULT, &old.func, &old.data);
    H5Eset_auto2(H5E_DEFAULT, h5_record_, NULL);
    h5_last_[0] = '\0';
    return old;
}

static int h5_leave_(h5_handler_t old, int rc)
{
    H5Eset_auto2(H5E_DEFAULT, old.func, old.data);
    return rc;
}

/* ALIG_E_CKPT "<path>: <what>: <reason of the last failed HDF5 call>". */
__attribute__((format(printf, 2, 3))) static int h5_fail_(const char *path, const char *fmt, ...)
{
    char what[512], reason[512];
    snprintf(reason, sizeof reason, "%s", h5_last_[0] ? h5_last_ : "HDF5 error");
    h5_last_[0] = '\0';
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    return alig_fail(ALIG_E_CKPT, "%s: %s: %s", path, what, reason);
}

/* File access: the v1.8+ format (checksummed superblock and object headers,
 * readable by HDF5 >= 1.8, h5py, h5dump); strong close, so a failed close
 * releases everything; no file locks (our files are renamed into place
 * complete, and locks fail on some parallel file systems). */
static hid_t fapl_(void)
{
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    if (fapl < 0)
        return fapl;
    H5Pset_libver_bounds(fapl, H5F_LIBVER_V18, H5F_LIBVER_LATEST);
    H5Pset_fclose_degree(fapl, H5F_CLOSE_STRONG);
#if H5_VERSION_GE(1, 10, 7)
    H5Pset_file_locking(fapl, 0, 1);
#endif
    return fapl;
}

static herr_t attr_write_(hid_t loc, const char *name, hid_t file_type, hid_t mem_type, int n,
                          const void *v)
{
    hsize_t dims = (hsize_t)n;
    hid_t space = n == 1 ? H5Screate(H5S_SCALAR) : H5Screate_simple(1, &dims, NULL);
    hid_t a = space < 0 ? -1 : H5Acreate2(loc, name, file_type, space, H5P_DEFAULT, H5P_DEFAULT);
    herr_t rc = a < 0 ? -1 : H5Awrite(a, mem_type, v);
    if (a >= 0 && H5Aclose(a) < 0)
        rc = -1;
    if (space >= 0)
        H5Sclose(space);
    return rc;
}

static herr_t attr_i64_(hid_t loc, const char *name, int64_t v)
{
    return attr_write_(loc, name, H5T_STD_I64LE, H5T_NATIVE_INT64, 1, &v);
}

static herr_t attr_u64_(hid_t loc, const char *name, uint64_t v)
{
    return attr_write_(loc, name, H5T_STD_U64LE, H5T_NATIVE_UINT64, 1, &v);
}

static herr_t attr_f64_(hid_t loc, const char *name, double v)
{
    return attr_write_(loc, name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, 1, &v);
}

/* A fixed-length, NUL-terminated UTF-8 string type of strlen(s) + 1 bytes. */
static hid_t str_type_(const char *s)
{
    hid_t type = H5Tcopy(H5T_C_S1);
    if (type < 0)
        return type;
    if (H5Tset_size(type, strlen(s) + 1) < 0 || H5Tset_strpad(type, H5T_STR_NULLTERM) < 0 ||
        H5Tset_cset(type, H5T_CSET_UTF8) < 0) {
        H5Tclose(type);
        return -1;
    }
    return type;
}

static herr_t attr_str_(hid_t loc, const char *name, const char *s)
{
    hid_t type = str_type_(s);
    herr_t rc = type < 0 ? -1 : attr_write_(loc, name, type, type, 1, s);
    if (type >= 0)
        H5Tclose(type);
    return rc;
}

/* A scalar string dataset (for texts too long for an attribute). */
static herr_t dset_str_(hid_t loc, const char *name, const char *s)
{
    hid_t type = str_type_(s);
    hid_t space = H5Screate(H5S_SCALAR);
    hid_t d = type < 0 || space < 0
                  ? -1
                  : H5Dcreate2(loc, name, type, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    herr_t rc = d < 0 ? -1 : H5Dwrite(d, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, s);
    if (d >= 0 && H5Dclose(d) < 0)
        rc = -1;
    if (space >= 0)
        H5Sclose(space);
    if (type >= 0)
        H5Tclose(type);
    return rc;
}

/* Read a one-element attribute converted to mem_type: 1 read, 0 absent, -1 error. */
static int attr_read_(hid_t loc, const char *name, hid_t mem_type, void *v)
{
    htri_t e = H5Aexists(loc, name);
    if (e <= 0)
        return (int)e;
    hid_t a = H5Aopen(loc, name, H5P_DEFAULT);
    hid_t space = a < 0 ? -1 : H5Aget_space(a);
    int rc = space >= 0 && H5Sget_simple_extent_npoints(space) == 1 && H5Aread(a, mem_type, v) >= 0
                 ? 1
                 : -1;
    if (space >= 0)
        H5Sclose(space);
    if (a >= 0)
        H5Aclose(a);
    return rc;
}

/* Read a fixed-length string attribute (is_dset 0) or scalar string dataset
 * (is_dset 1) into a malloc'd string: 1 read, 0 absent, -1 error. */
static int read_str_(hid_t loc, const char *name, int is_dset, char **out)
{
    *out = NULL;
    htri_t e = is_dset ? H5Lexists(loc, name, H5P_DEFAULT) : H5Aexists(loc, name);
    if (e <= 0)
        return (int)e;
    hid_t obj = is_dset ? H5Dopen2(loc, name, H5P_DEFAULT) : H5Aopen(loc, name, H5P_DEFAULT);
    if (obj < 0)
        return -1;
    hid_t type = is_dset ? H5Dget_type(obj) : H5Aget_type(obj);
    int rc = -1;
    if (type >= 0 && H5Tget_class(type) == H5T_STRING && H5Tis_variable_str(type) == 0) {
        size_t size = H5Tget_size(type);
        char *buf = size < ((size_t)1 << 30) ? calloc(size + 1, 1) : NULL;
        herr_t r = -1;
        if (buf)
            r = is_dset ? H5Dread(obj, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf)
                        : H5Aread(obj, type, buf);
        if (r >= 0) {
            *out = buf;
            rc = 1;
        } else {
            free(buf);
        }
    }
    if (type >= 0)
        H5Tclose(type);
    if (is_dset)
        H5Dclose(obj);
    else
        H5Aclose(obj);
    return rc;
}

/* "(16, 36)" */
static void shape_str_(int ndim, const int64_t *dims, char *buf, size_t size)
{
    size_t used = (size_t)snprintf(buf, size, "(");
    for (int i = 0; i < ndim && used < size; i++)
        used +=
            (size_t)snprintf(buf + used, size - used, "%s%lld", i ? ", " : "", (long long)dims[i]);
    if (used < size)
        snprintf(buf + used, size - used, "%s)", ndim == 1 ? "," : "");
}

/* H5Lexists for every component of an absolute path (H5Lexists itself
 * fails, rather than saying no, when a parent group is missing). */
static htri_t path_exists_(hid_t file, const char *path)
{
    char buf[DSET_MAX + 16];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = strchr(buf + 1, '/');; p = strchr(p + 1, '/')) {
        if (p)
            *p = '\0';
        htri_t e = H5Lexists(file, buf, H5P_DEFAULT);
        if (p)
            *p = '/';
        if (e <= 0 || !p)
            return e;
    }
}

/* ------------------------------------------------------------------------ */
/* @@WRITE one file */

/* Chunk dimensions: the whole tensor, halving the leading dimensions until
 * a chunk is at most CHUNK_BYTES (so a chunk holds whole rows when it can). */
static void chunk_dims_(const alig_tensor_t *t, hsize_t *chunk)
{
    size_t elems = 1;
    for (int d = 0; d < t->ndim; d++) {
        chunk[d] = (hsize_t)t->shape[d];
        elems *= (size_t)chunk[d];
    }
    for (int d = 0; d < t->ndim && elems * sizeof(float) > CHUNK_BYTES; d++) {
        while (chunk[d] > 1 && elems * sizeof(float) > CHUNK_BYTES) {
            elems /= (size_t)chunk[d];
            chunk[d] = (chunk[d] + 1) / 2;
            elems *= (size_t)chunk[d];
        }
    }
}

/* One float32 dataset per tensor, named <group>/<tensor name>, with the
 * tensor's shape, chunked with the Fletcher-32 filter. */
static int write_tensors_(hid_t file, const char *path, const char *group, const alig_tensor_t *ts,
                          int n, const float *base)
{
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
    if (lcpl < 0 || H5Pset_create_intermediate_group(lcpl, 1) < 0) {
        if (lcpl >= 0)
            H5Pclose(lcpl);
        return h5_fail_(path, "cannot set up %s", group);
    }
    int rc = ALIG_OK;
    for (int i = 0; i < n && rc == ALIG_OK; i++) {
        const alig_tensor_t *t = &ts[i];
        char name[DSET_MAX];
        snprintf(name, sizeof name, "%s/%s", group, t->name);
        if (t->ndim < 1 || t->ndim > 4) {
            rc = alig_fail(ALIG_E_INTERNAL, "%s: tensor %s has %d dimensions", path, t->name,
                           t->ndim);
            break;
        }
        hsize_t dims[4], chunk[4];
        for (int d = 0; d < t->ndim; d++)
            dims[d] = (hsize_t)t->shape[d];
        chunk_dims_(t, chunk);
        hid_t space = H5Screate_simple(t->ndim, dims, NULL);
        hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
        herr_t ok = space < 0 || dcpl < 0 ? -1 : 0;
        if (ok >= 0 && t->size > 0) /* a chunk may not have a zero dimension */
            ok = H5Pset_chunk(dcpl, t->ndim, chunk) < 0 || H5Pset_fletcher32(dcpl) < 0 ? -1 : 0;
        hid_t d =
            ok < 0 ? -1 : H5Dcreate2(file, name, H5T_IEEE_F32LE, space, lcpl, dcpl, H5P_DEFAULT);
        if (d < 0 ||
            H5Dwrite(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, base + t->offset) < 0)
            rc = h5_fail_(path, "cannot write %s", name);
        if (d >= 0 && H5Dclose(d) < 0 && rc == ALIG_OK)
            rc = h5_fail_(path, "cannot write %s", name);
        if (dcpl >= 0)
            H5Pclose(dcpl);
        if (space >= 0)
            H5Sclose(space);
    }
    H5Pclose(lcpl);
    return rc;
}

static hid_t group_(hid_t file, const char *name)
{
    return H5Gcreate2(file, name, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
}

char *alig_ckpt_config_text_(const alig_config_t *cfg)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f)
        return NULL;
    alig_config_write(f, cfg);
    if (fclose(f) != 0) {
        free(buf);
        return NULL;
    }
    return buf;
}

/*
 * A group holding one float buffer laid out as `ts`: one dataset per tensor,
 * the FNV-1a hash of the whole buffer (checked on load) and, when count_attr
 * is not NULL, its element count.
 */
static int write_buffer_group_(hid_t file, const char *path, const char *group,
                               const char *count_attr, const alig_tensor_t *ts, int n_ts,
                               const float *buf, int64_t n)
{
    hid_t g = group_(file, group);
    if (g < 0)
        return h5_fail_(path, "cannot create %s", group);
    herr_t a = (count_attr && attr_i64_(g, count_attr, n) < 0) ||
                       attr_u64_(g, "fnv1a64", alig_hash64(buf, sizeof(float) * (size_t)n)) < 0
                   ? -1
                   : 0;
    H5Gclose(g);
    if (a < 0)
        return h5_fail_(path, "cannot write the attributes of %s", group);
    return write_tensors_(file, path, group, ts, n_ts, buf);
}

static int write_body_(hid_t file, const char *path, const alig_trainer_t *t)
{
    const alig_model_t *m = &t->model;
    const alig_config_t *cfg = t->cfg;
    int rc;

    char created[32] = "";
    time_t now = time(NULL);
    struct tm tm;
    if (gmtime_r(&now, &tm))
        strftime(created, sizeof created, "%Y-%m-%dT%H:%M:%SZ", &tm);
    if (attr_str_(file, "format", ALIG_CKPT_FORMAT) < 0 ||
        attr_i64_(file, "format_version", ALIG_CKPT_VERSION) < 0 ||
        attr_str_(file, "alig_version", ALIG_VERSION) < 0 ||
        attr_str_(file, "created", created) < 0)
        return h5_fail_(path, "cannot write the root attributes");

    /* /params, /state: one dataset per tensor, a count and a hash on the group */
    if ((rc = write_buffer_group_(file, path, "/params", "n_params", m->tensors, m->n_tensors,
                                  m->params, m->n_params)) ||
        (rc = write_buffer_group_(file, path, "/state", "n_state", m->state_tensors,
                                  m->n_state_tensors, m->state, m->n_state)))
        return rc;

    hid_t g = group_(file, "/optim");
    if (g < 0)
        return h5_fail_(path, "cannot create /optim");
    const alig_optim_opts_t *o = &t->optim.opts;
    herr_t a = attr_str_(g, "name", t->cfg->optimizer) < 0 ||
                attr_i64_(g, "adam_steps", t->optim.t) < 0 ||
                attr_f64_(g, "momentum", o->momentum) < 0 ||
                attr_str_(g, "momentum_type", o->adjusted ? "adjusted" : "standard") < 0 ||
                attr_f64_(g, "max_lr", o->max_lr) < 0 || attr_f64_(g, "delta", o->delta) < 0 ||
                attr_f64_(g, "max_norm", o->max_norm) < 0
            ? -1
            : 0;
    H5Gclose(g);
    if (a < 0)
        return h5_fail_(path, "cannot write the attributes of /optim");
    /* optimizer buffers, laid out like the parameters: momentum (ALI-G, SGD) or Adam's
     * first moment, and Adam's second moment */
    if (t->optim.v && (rc = write_buffer_group_(file, path, "/optim/momentum", NULL, m->tensors,
                                                m->n_tensors, t->optim.v, m->n_params)))
        return rc;
    if (t->optim.s && (rc = write_buffer_group_(file, path, "/optim/second_moment", NULL,
                                                m->tensors, m->n_tensors, t->optim.s,
                                                m->n_params)))
        return rc;

    /* /train: where training stands */
    g = group_(file, "/train");
    if (g < 0)
        return h5_fail_(path, "cannot create /train");
    const alig_epoch_stats_t *s = &t->stats;
    a = attr_i64_(g, "step", t->step) < 0 || attr_i64_(g, "epoch", t->epoch) < 0 ||
                attr_i64_(g, "batch", t->batch) < 0 ||
                attr_i64_(g, "batches_per_epoch", t->batches_per_epoch) < 0 ||
                attr_i64_(g, "train_samples", t->train.n) < 0 ||
                attr_u64_(g, "seed", cfg->seed) < 0 ||
                attr_i64_(g, "world_size", alig_comm_size(t->comm)) < 0 ||
                attr_i64_(g, "threads_per_rank", t->threads) < 0 ||
                attr_i64_(g, "parts_per_rank", t->n_parts) < 0 ||
                attr_str_(g, "blas_kernels", openblas_get_corename()) < 0 ||
                attr_i64_(g, "batch_size", cfg->batch_size) < 0 ||
                attr_f64_(g, "stats_loss_sum", s->loss_sum) < 0 ||
                attr_i64_(g, "stats_correct", s->correct) < 0 ||
                attr_i64_(g, "stats_samples", s->samples) < 0 ||
                attr_i64_(g, "stats_steps", s->steps) < 0 ||
                attr_i64_(g, "stats_clipped", s->clipped) < 0 ||
                attr_i64_(g, "stats_skipped", s->skipped) < 0 ||
                attr_f64_(g, "stats_step_sum", s->step_sum) < 0 ||
                attr_f64_(g, "stats_step_min", s->step_min) < 0 ||
                attr_f64_(g, "stats_step_max", s->step_max) < 0 ||
                attr_f64_(g, "stats_seconds", s->seconds) < 0 ||
                attr_write_(g, "stats_phase", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, ALIG_N_PHASES,
                            s->phase) < 0
            ? -1
            : 0;
    H5Gclose(g);
    if (a < 0)
        return h5_fail_(path, "cannot write the attributes of /train");

    /* /model: what the parameters belong to */
    g = group_(file, "/model");
    if (g < 0)
        return h5_fail_(path, "cannot create /model");
    char summary[32768];
    alig_model_summary(m, summary, sizeof summary);
    int64_t input[3] = {m->in_c, m->in_h, m->in_w};
    a = attr_str_(g, "layers", m->spec ? m->spec : cfg->layers) < 0 ||
                attr_i64_(g, "n_params", m->n_params) < 0 ||
                attr_i64_(g, "n_classes", m->n_classes) < 0 ||
                attr_write_(g, "input_shape", H5T_STD_I64LE, H5T_NATIVE_INT64, 3, input) < 0 ||
                dset_str_(g, "summary", summary) < 0
            ? -1
            : 0;
    H5Gclose(g);
    if (a < 0)
        return h5_fail_(path, "cannot write /model");

    /* the config: as given, and every key in effect */
    char *eff = alig_ckpt_config_text_(cfg);
    if (!eff)
        return alig_fail(ALIG_E_MEMORY, "%s: cannot format the config", path);
    a = dset_str_(file, "/config", cfg->text ? cfg->text : "") < 0 ||
                dset_str_(file, "/config_effective", eff) < 0
            ? -1
            : 0;
    free(eff);
    if (a < 0)
        return h5_fail_(path, "cannot write /config");
    return ALIG_OK;
}

/* Test hook (docs/checkpoint-format.md): with ALIG_TEST_CKPT_PAUSE=STEP,
 * the writer of the checkpoint of that step writes half the file, syncs it
 * and stops, so a test can kill the job in the middle of a save. */
static int test_pause_at_(int64_t step)
{
    const char *e = getenv("ALIG_TEST_CKPT_PAUSE");
    return e && *e && strtoll(e, NULL, 10) == step;
}

static void test_pause_(int fd, const char *path)
{
    fdatasync(fd);
    fprintf(stderr, "alig-train: test hook: pausing while writing %s\n", path);
    fflush(stderr);
    for (int i = 0; i < 600; i++) /* at most a minute; the test kills us long before */
        usleep(100000);
}

/* Write bytes to a new file and fsync it; errors name the path and errno. */
static int write_bytes_(const char *path, const unsigned char *buf, size_t n, int64_t step)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0)
        return alig_fail(ALIG_E_CKPT, "%s: cannot create: %s", path, strerror(errno));
    size_t done = 0, pause_at = test_pause_at_(step) ? n / 2 : n + 1;
    int e = 0;
    while (done < n) {
        size_t chunk = n - done;
        if (done < pause_at && chunk > pause_at - done)
            chunk = pause_at - done;
        ssize_t w = write(fd, buf + done, chunk);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            e = w < 0 ? errno : EIO;
            break;
        }
        done += (size_t)w;
        if (done == pause_at)
            test_pause_(fd, path);
    }
    if (!e && fsync(fd) != 0)
        e = errno;
    if (close(fd) != 0 && !e)
        e = errno;
    if (e)
        return alig_fail(ALIG_E_CKPT, "%s: cannot write (%zu of %zu bytes written): %s", path, done,
                         n, strerror(e));
    return ALIG_OK;
}

/* Bob Jenkins' lookup3 hashlittle(), byte-wise: HDF5's metadata checksum. */
#define ROT_(x, k) (((x) << (k)) | ((x) >> (32 - (k))))
static uint32_t lookup3_(const unsigned char *k, size_t length, uint32_t initval)
{
    uint32_t a, b, c;
    a = b = c = 0xdeadbeefu + (uint32_t)length + initval;
    while (length > 12) {
        a += k[0] + ((uint32_t)k[1] << 8) + ((uint32_t)k[2] << 16) + ((uint32_t)k[3] << 24);
        b += k[4] + ((uint32_t)k[5] << 8) + ((uint32_t)k[6] << 16) + ((uint32_t)k[7] << 24);
        c += k[8] + ((uint32_t)k[9] << 8) + ((uint32_t)k[10] << 16) + ((uint32_t)k[11] << 24);
        /* clang-format off */
        a -= c; a ^= ROT_(c, 4); c += b;
        b -= a; b ^= ROT_(a, 6); a += c;
        c -= b; c ^= ROT_(b, 8); b += a;
        a -= c; a ^= ROT_(c, 16); c += b;
        b -= a; b ^= ROT_(a, 19); a += c;
        c -= b; c ^= ROT_(b, 4); b += a;
        /* clang-format on */
        length -= 12;
        k += 12;
    }
    if (length == 0)
        return c;
    uint32_t w[3] = {0, 0, 0};
    for (size_t i = 0; i < length; i++)
        w[i / 4] += (uint32_t)k[i] << (8 * (i % 4));
    a += w[0];
    b += w[1];
    c += w[2];
    /* clang-format off */
    c ^= b; c -= ROT_(b, 14);
    a ^= c; a -= ROT_(c, 11);
    b ^= a; b -= ROT_(a, 25);
    c ^= b; c -= ROT_(b, 16);
    a ^= c; a -= ROT_(c, 4);
    b ^= a; b -= ROT_(a, 14);
    c ^= b; c -= ROT_(b, 24);
    /* clang-format on */
    return c;
}

/*
 * HDF5 1.10 bug: H5Fget_file_image clears the "open for writing" status flag
 * in a version 2/3 superblock but keeps the checksum computed with the flag
 * set, so the image fails to open ("incorrect metadata checksum"). Recompute
 * the superblock checksum: it covers the 12 fixed bytes and 4 addresses.
 */
static void fix_superblock_(unsigned char *img, size_t size)
{
    static const unsigned char sig[8] = {0x89, 'H', 'D', 'F', '\r', '\n', 0x1a, '\n'};
    if (size < 16 || memcmp(img, sig, 8) != 0 || img[8] < 2)
        return;
    size_t len = 12 + 4 * (size_t)img[9];
    if (size < len + 4)
        return;
    uint32_t sum = lookup3_(img, len, 0);
    for (int i = 0; i < 4; i++)
        img[len + (size_t)i] = (unsigned char)(sum >> (8 * i));
}

size_t alig_ckpt_data_bytes(const alig_trainer_t *t)
{
    const alig_model_t *m = &t->model;
    int64_t floats = m->n_params + m->n_state + (t->optim.v ? m->n_params : 0) +
                     (t->optim.s ? m->n_params : 0);
    return sizeof(float) * (size_t)floats + ((size_t)1 << 20);
}

/*
 * The file is built in memory (HDF5's core driver, no backing store) and
 * written with plain write() + fsync(): an I/O error (disk full, quota)
 * is then our own errno, and never leaves HDF5 holding a half-flushed
 * file (HDF5 1.10 can crash at exit when closing a file whose flush
 * failed). Costs the in-memory file and one copy of it on rank 0.
 */
static int write_file_(const char *path, const alig_trainer_t *t)
{
    /* the core driver grows its buffer by this much: the size of the data plus headroom */
    size_t expect = alig_ckpt_data_bytes(t);
    hid_t fapl = fapl_();
    if (fapl < 0 || H5Pset_fapl_core(fapl, expect, 0) < 0) {
        if (fapl >= 0)
            H5Pclose(fapl);
        return h5_fail_(path, "cannot set up the in-memory file");
    }
    hid_t file = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
    H5Pclose(fapl);
    if (file < 0)
        return h5_fail_(path, "cannot create");
    int rc = write_body_(file, path, t);
    unsigned char *image = NULL;
    ssize_t size = -1;
    if (rc == ALIG_OK && H5Fflush(file, H5F_SCOPE_GLOBAL) < 0)
        rc = h5_fail_(path, "cannot flush");
    if (rc == ALIG_OK && (size = H5Fget_file_image(file, NULL, 0)) <= 0)
        rc = h5_fail_(path, "cannot get the file image");
    if (rc == ALIG_OK && !(image = alig_malloc((size_t)size, "checkpoint image")))
        rc = ALIG_E_MEMORY;
    if (rc == ALIG_OK && H5Fget_file_image(file, image, (size_t)size) != size)
        rc = h5_fail_(path, "cannot get the file image");
    if (H5Fclose(file) < 0 && rc == ALIG_OK)
        rc = h5_fail_(path, "cannot close");
    H5Eclear2(H5E_DEFAULT);
    if (rc == ALIG_OK) {
        fix_superblock_(image, (size_t)size);
        rc = write_bytes_(path, image, (size_t)size, t->step);
    }
    free(image);
    return rc;
}

int alig_ckpt_write_file(const char *path, const alig_trainer_t *t)
{
    h5_handler_t old = h5_enter_();
    return h5_leave_(old, write_file_(path, t));
}

/* ------------------------------------------------------------------------ */
/* @@READ one file */

void alig_ckpt_info_free(alig_ckpt_info_t *info)
{
    if (!info)
        return;
    free(info->config);
    free(info->config_effective);
    free(info->blas_kernels);
    info->config = info->config_effective = info->blas_kernels = NULL;
}

/* Is `name` (relative to its group) one of the tensors? */
static int known_tensor_(const alig_tensor_t *ts, int n, const char *name)
{
    for (int i = 0; i < n; i++)
        if (strcmp(ts[i].name, name) == 0)
            return 1;
    return 0;
}

/* Find a dataset under group g (two levels deep, in name order) that is not
 * one of the tensors; its name goes to extra. 1 found, 0 none, -1 error. */
static int find_extra_(hid_t g, const char *prefix, int depth, const alig_tensor_t *ts, int n,
                       char *extra, size_t size)
{
    H5G_info_t info;
    if (H5Gget_info(g, &info) < 0)
        return -1;
    for (hsize_t i = 0; i < info.nlinks; i++) {
        char name[ALIG_NAME_MAX * 2], full[ALIG_NAME_MAX * 4];
        if (H5Lget_name_by_idx(g, ".", H5_INDEX_NAME, H5_ITER_INC, i, name, sizeof name,
                               H5P_DEFAULT) < 0)
            return -1;
        int len = snprintf(full, sizeof full, "%s%s%s", prefix, *prefix ? "/" : "", name);
        if (len < 0 || (size_t)len >= sizeof full) /* longer than any name we write */
            full[sizeof full - 1] = '\0';
        hid_t o = H5Oopen(g, name, H5P_DEFAULT);
        if (o < 0)
            return -1;
        H5I_type_t type = H5Iget_type(o);
        int rc = 0;
        if (type == H5I_DATASET && !known_tensor_(ts, n, full)) {
            snprintf(extra, size, "%s", full);
            rc = 1;
        } else if (type == H5I_GROUP && depth < 2) {
            rc = find_extra_(o, full, depth + 1, ts, n, extra, size);
        }
        H5Oclose(o);
        if (rc)
            return rc;
    }
    return 0;
}

/*
 * A tensor read from a file holds finite values only: alig-train never writes another
 * (a non-finite step stops or is skipped), but a [checkpoint] init file from elsewhere
 * may, and a NaN weight behind a relu trains on unseen while the weight norm, and with
 * it the max_norm projection, is NaN (found by a new-user trial).
 */
static int check_finite_(const char *path, const char *name, const float *x, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(x[i]))
            return alig_fail(ALIG_E_CKPT, "%s: %s holds a non-finite value (%g at element %lld)",
                             path, name, (double)x[i], (long long)i);
    return ALIG_OK;
}

/* Read the tensors ts[0..n) from <group>/<name> into base, checking that
 * each exists with its shape and finite values, and that nothing else is under the group. */
static int read_tensors_(hid_t file, const char *path, const char *group, const alig_tensor_t *ts,
                         int n, float *base, int *mismatch)
{
    for (int i = 0; i < n; i++) {
        const alig_tensor_t *t = &ts[i];
        char name[DSET_MAX], want[96], have[96];
        snprintf(name, sizeof name, "%s/%s", group, t->name);
        shape_str_(t->ndim, t->shape, want, sizeof want);
        htri_t e = path_exists_(file, name);
        if (e < 0)
            return h5_fail_(path, "cannot look up %s", name);
        if (e == 0) {
            *mismatch = 1;
            return alig_fail(ALIG_E_CKPT,
                             "%s: architecture mismatch: the model's tensor %s, shape %s, is not "
                             "in the file (no dataset %s)",
                             path, t->name, want, name);
        }
        hid_t d = H5Dopen2(file, name, H5P_DEFAULT);
        if (d < 0)
            return h5_fail_(path, "cannot open %s", name);
        hid_t space = H5Dget_space(d), type = H5Dget_type(d);
        int ndim = space < 0 ? -1 : H5Sget_simple_extent_ndims(space);
        hsize_t dims[8] = {0};
        int64_t found[8] = {0};
        if (ndim >= 0 && ndim <= 8)
            H5Sget_simple_extent_dims(space, dims, NULL);
        int same = ndim == t->ndim;
        for (int k = 0; ndim >= 0 && k < ndim && k < 8; k++) {
            found[k] = (int64_t)dims[k];
            same = same && k < 4 && found[k] == t->shape[k];
        }
        int rc = ALIG_OK;
        if (ndim < 0 || ndim > 8 || type < 0) {
            rc = h5_fail_(path, "cannot read the shape of %s", name);
        } else if (!same) {
            shape_str_(ndim, found, have, sizeof have);
            *mismatch = 1;
            rc = alig_fail(ALIG_E_CKPT,
                           "%s: architecture mismatch at tensor %s: the model ([model] layers "
                           "or preset) expects shape %s, the file has %s",
                           path, t->name, want, have);
        } else if (H5Tget_class(type) != H5T_FLOAT) {
            *mismatch = 1;
            rc = alig_fail(ALIG_E_CKPT, "%s: %s is not a floating-point dataset", path, name);
        } else if (H5Dread(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, base + t->offset) <
                   0) {
            /* a Fletcher-32 mismatch lands here */
            rc = h5_fail_(path, "cannot read %s (corrupt?)", name);
        } else {
            rc = check_finite_(path, name, base + t->offset, t->size);
        }
        if (type >= 0)
            H5Tclose(type);
        if (space >= 0)
            H5Sclose(space);
        H5Dclose(d);
        if (rc)
            return rc;
    }
    htri_t e = path_exists_(file, group);
    if (e <= 0)
        return e < 0 ? h5_fail_(path, "cannot look up %s", group) : ALIG_OK;
    hid_t g = H5Gopen2(file, group, H5P_DEFAULT);
    if (g < 0)
        return h5_fail_(path, "cannot open %s", group);
    char extra[ALIG_NAME_MAX * 4];
    int found = find_extra_(g, "", 0, ts, n, extra, sizeof extra);
    H5Gclose(g);
    if (found < 0)
        return h5_fail_(path, "cannot list %s", group);
    if (found) {
        *mismatch = 1;
        return alig_fail(ALIG_E_CKPT,
                         "%s: architecture mismatch: the file has %s/%s, which the model "
                         "([model] layers or preset) does not have",
                         path, group, extra);
    }
    return ALIG_OK;
}

/* Compare the FNV-1a hash attribute of `group` with the buffer just read. */
static int check_hash_(hid_t file, const char *path, const char *group, const float *buf, int64_t n,
                       int required)
{
    hid_t g = H5Gopen2(file, group, H5P_DEFAULT);
    if (g < 0)
        return h5_fail_(path, "cannot open %s", group);
    uint64_t want = 0;
    int r = attr_read_(g, "fnv1a64", H5T_NATIVE_UINT64, &want);
    H5Gclose(g);
    if (r < 0)
        return h5_fail_(path, "cannot read %s fnv1a64", group);
    if (r == 0)
        return required ? alig_fail(ALIG_E_CKPT, "%s: %s has no fnv1a64 attribute", path, group)
                        : ALIG_OK;
    uint64_t have = alig_hash64(buf, sizeof(float) * (size_t)n);
    if (have != want)
        return alig_fail(ALIG_E_CKPT,
                         "%s: %s is corrupt: its FNV-1a hash is %016" PRIx64
                         ", the file says %016" PRIx64,
                         path, group, have, want);
    return ALIG_OK;
}

static int read_body_(hid_t file, const char *path, const alig_model_t *m, float *params,
                      float *state, float *momentum, alig_ckpt_info_t *info, int *mismatch)
{
    char *format = NULL;
    int r = read_str_(file, "format", 0, &format);
    int is_ckpt = r == 1 && strcmp(format, ALIG_CKPT_FORMAT) == 0;
    free(format);
    if (r < 0)
        return h5_fail_(path, "cannot read the format attribute");
    if (!is_ckpt)
        return alig_fail(ALIG_E_CKPT,
                         "%s: not an alig-train checkpoint (the root attribute "
                         "format is not \"" ALIG_CKPT_FORMAT "\")",
                         path);
    int64_t version = 0;
    if (attr_read_(file, "format_version", H5T_NATIVE_INT64, &version) != 1)
        return h5_fail_(path, "cannot read format_version");
    if (version < 1 || version > ALIG_CKPT_VERSION)
        return alig_fail(ALIG_E_CKPT,
                         "%s: format_version %lld; this alig-train reads versions 1 to %d", path,
                         (long long)version, ALIG_CKPT_VERSION);
    info->version = (int)version;

    int rc = read_tensors_(file, path, "/params", m->tensors, m->n_tensors, params, mismatch);
    if (!rc)
        rc = check_hash_(file, path, "/params", params, m->n_params, 1);
    if (!rc)
        rc = read_tensors_(file, path, "/state", m->state_tensors, m->n_state_tensors, state,
                           mismatch);
    if (!rc && m->n_state > 0)
        rc = check_hash_(file, path, "/state", state, m->n_state, 1);
    if (rc)
        return rc;

    htri_t has_v = path_exists_(file, "/optim/momentum");
    if (has_v < 0)
        return h5_fail_(path, "cannot look up /optim/momentum");
    info->has_momentum = has_v > 0;
    if (momentum && has_v) {
        rc = read_tensors_(file, path, "/optim/momentum", m->tensors, m->n_tensors, momentum,
                           mismatch);
        if (!rc)
            rc = check_hash_(file, path, "/optim/momentum", momentum, m->n_params, 1);
        if (rc)
            return rc;
    } else if (momentum) {
        memset(momentum, 0, sizeof(float) * (size_t)m->n_params);
    }

    hid_t g = H5Gopen2(file, "/train", H5P_DEFAULT);
    if (g < 0)
        return h5_fail_(path, "cannot open /train");
    alig_epoch_stats_t *s = &info->stats;
    int64_t world = 0, batch_size = 0;
    struct {
        const char *name;
        hid_t type;
        void *dst;
    } attrs[] = {
        {"step", H5T_NATIVE_INT64, &info->step},
        {"epoch", H5T_NATIVE_INT64, &info->epoch},
        {"batch", H5T_NATIVE_INT64, &info->batch},
        {"batches_per_epoch", H5T_NATIVE_INT64, &info->batches_per_epoch},
        {"train_samples", H5T_NATIVE_INT64, &info->train_samples},
        {"seed", H5T_NATIVE_UINT64, &info->seed},
        {"world_size", H5T_NATIVE_INT64, &world},
        {"batch_size", H5T_NATIVE_INT64, &batch_size},
        {"stats_loss_sum", H5T_NATIVE_DOUBLE, &s->loss_sum},
        {"stats_correct", H5T_NATIVE_INT64, &s->correct},
        {"stats_samples", H5T_NATIVE_INT64, &s->samples},
        {"stats_steps", H5T_NATIVE_INT64, &s->steps},
        {"stats_clipped", H5T_NATIVE_INT64, &s->clipped},
        {"stats_skipped", H5T_NATIVE_INT64, &s->skipped},
        {"stats_step_sum", H5T_NATIVE_DOUBLE, &s->step_sum},
        {"stats_step_min", H5T_NATIVE_DOUBLE, &s->step_min},
        {"stats_step_max", H5T_NATIVE_DOUBLE, &s->step_max},
        {"stats_seconds", H5T_NATIVE_DOUBLE, &s->seconds},
    };
    for (size_t i = 0; i < sizeof attrs / sizeof attrs[0]; i++) {
        r = attr_read_(g, attrs[i].name, attrs[i].type, attrs[i].dst);
        if (r != 1) {
            H5Gclose(g);
            return r < 0 ? h5_fail_(path, "cannot read /train %s", attrs[i].name)
                         : alig_fail(ALIG_E_CKPT, "%s: /train has no attribute %s", path,
                                     attrs[i].name);
        }
    }
    /* rank 0's threads and parts ([run] parallel = batch) at save time: only for a
     * warning on resume, so files written before they were stored leave them 0 */
    int64_t threads = 0, parts = 0;
    if (attr_read_(g, "threads_per_rank", H5T_NATIVE_INT64, &threads) != 1)
        threads = 0;
    if (attr_read_(g, "parts_per_rank", H5T_NATIVE_INT64, &parts) != 1)
        parts = 0;
    info->threads = threads > 0 && threads <= ALIG_MAX_THREADS ? (int)threads : 0;
    info->parts = parts > 0 && parts <= ALIG_MAX_THREADS ? (int)parts : 0;
    /* rank 0's OpenBLAS kernels, likewise for a warning only */
    if (read_str_(g, "blas_kernels", 0, &info->blas_kernels) != 1)
        info->blas_kernels = NULL;
    /* seconds per phase of the step (rank 0's): only for the epoch line, so a
     * file with another number of phases just leaves them zero */
    hid_t a = H5Aexists(g, "stats_phase") > 0 ? H5Aopen(g, "stats_phase", H5P_DEFAULT) : -1;
    hid_t as = a < 0 ? -1 : H5Aget_space(a);
    if (as >= 0 && H5Sget_simple_extent_npoints(as) == ALIG_N_PHASES)
        H5Aread(a, H5T_NATIVE_DOUBLE, s->phase);
    if (as >= 0)
        H5Sclose(as);
    if (a >= 0)
        H5Aclose(a);
    H5Gclose(g);
    info->world_size = (int)world;
    info->batch_size = (int)batch_size;
    if (info->step < 0 || info->epoch < 0 || info->batch < 0 || info->batches_per_epoch < 1 ||
        info->batch >= info->batches_per_epoch || world < 1 || batch_size < 1 ||
        info->train_samples < 1)
        return alig_fail(ALIG_E_CKPT,
                         "%s: implausible training position (step %lld, epoch %lld, batch %lld of "
                         "%lld, %lld ranks, batch size %lld)",
                         path, (long long)info->step, (long long)info->epoch,
                         (long long)info->batch, (long long)info->batches_per_epoch,
                         (long long)world, (long long)batch_size);

    if (read_str_(file, "/config", 1, &info->config) != 1 ||
        read_str_(file, "/config_effective", 1, &info->config_effective) != 1)
        return h5_fail_(path, "cannot read /config");
    return ALIG_OK;
}

static int read_file_(const char *path, const alig_model_t *m, float *params, float *state,
                      float *momentum, alig_ckpt_info_t *info, int *mismatch)
{
    int mm = 0;
    alig_ckpt_info_t local;
    if (!info)
        info = &local;
    memset(info, 0, sizeof *info);
    if (mismatch)
        *mismatch = 0;
    hid_t fapl = fapl_();
    hid_t file = fapl < 0 ? -1 : H5Fopen(path, H5F_ACC_RDONLY, fapl);
    if (fapl >= 0)
        H5Pclose(fapl);
    if (file < 0)
        return h5_fail_(path, "cannot open");
    int rc = read_body_(file, path, m, params, state, momentum, info, &mm);
    H5Fclose(file);
    H5Eclear2(H5E_DEFAULT);
    if (mismatch)
        *mismatch = mm;
    if (rc || info == &local)
        alig_ckpt_info_free(info);
    return rc;
}

int alig_ckpt_read_file(const char *path, const alig_model_t *m, float *params, float *state,
                        float *momentum, alig_ckpt_info_t *info, int *mismatch)
{
    h5_handler_t old = h5_enter_();
    return h5_leave_(old, read_file_(path, m, params, state, momentum, info, mismatch));
}

static int read_second_moment_(const char *path, const alig_model_t *m, float *second,
                               int64_t *adam_steps)
{
    hid_t fapl = fapl_();
    hid_t file = fapl < 0 ? -1 : H5Fopen(path, H5F_ACC_RDONLY, fapl);
    if (fapl >= 0)
        H5Pclose(fapl);
    if (file < 0)
        return h5_fail_(path, "cannot open");
    int rc = ALIG_OK, mm = 0;
    *adam_steps = 0;
    hid_t g = H5Gopen2(file, "/optim", H5P_DEFAULT);
    if (g >= 0) {
        if (attr_read_(g, "adam_steps", H5T_NATIVE_INT64, adam_steps) != 1)
            *adam_steps = 0; /* written before Adam existed */
        H5Gclose(g);
    }
    htri_t has = path_exists_(file, "/optim/second_moment");
    if (has > 0) {
        rc = read_tensors_(file, path, "/optim/second_moment", m->tensors, m->n_tensors, second,
                           &mm);
        if (!rc)
            rc = check_hash_(file, path, "/optim/second_moment", second, m->n_params, 1);
    } else {
        memset(second, 0, sizeof(float) * (size_t)m->n_params);
    }
    H5Fclose(file);
    H5Eclear2(H5E_DEFAULT);
    return rc;
}

int alig_ckpt_read_second_moment(const char *path, const alig_model_t *m, float *second,
                                 int64_t *adam_steps)
{
    h5_handler_t old = h5_enter_();
    return h5_leave_(old, read_second_moment_(path, m, second, adam_steps));
}

static int load_params_(alig_model_t *m, const char *path)
{
    float *tmp =
        alig_malloc(sizeof(float) * (size_t)m->n_params, "parameters from [checkpoint] init");
    if (!tmp)
        return ALIG_E_MEMORY;
    hid_t fapl = fapl_();
    hid_t file = fapl < 0 ? -1 : H5Fopen(path, H5F_ACC_RDONLY, fapl);
    if (fapl >= 0)
        H5Pclose(fapl);
    int mm = 0, rc;
    if (file < 0) {
        rc = h5_fail_(path, "[checkpoint] init: cannot open");
    } else {
        rc = read_tensors_(file, path, "/params", m->tensors, m->n_tensors, tmp, &mm);
        if (!rc) /* checkpoints carry a hash; plain parameter files need not */
            rc = check_hash_(file, path, "/params", tmp, m->n_params, 0);
        H5Fclose(file);
        H5Eclear2(H5E_DEFAULT);
    }
    if (!rc)
        memcpy(m->params, tmp, sizeof(float) * (size_t)m->n_params);
    free(tmp);
    return rc;
}

int alig_ckpt_load_params(alig_model_t *m, const char *path)
{
    h5_handler_t old = h5_enter_();
    return h5_leave_(old, load_params_(m, path));
}
