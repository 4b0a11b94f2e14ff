/*
 * A fake of NVIDIA's libnvidia-ml.so.1 for tests on machines without a GPU.
 *
 * It exports a subset of NVML with the real names, C signatures (as laid out in nvml.h) and return codes.
 * What it answers is driven by a `state` file of `key=value` lines in the directory the loaded .so lives in,
 * re-read on every call; every call (but nvmlErrorString) appends `<function> <device index|-> <rc>` to
 * `calls.log` in that same directory. See fake-nvml.ts, which compiles this file and writes the state.
 *
 * Every copy of the .so in its own directory is a separate instance (its own state file, its own init
 * count, poll counters and lost-GPU latches), because dlopen of another file is another object.
 *
 * Build: cc -shared -fPIC -O1 -Wall -Wextra -Werror -o <dir>/libnvidia-ml.so.1 fake-nvml.c -ldl -lpthread
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define EXPORT __attribute__((visibility("default")))

/* ---------------------------------------------------------------- nvml.h types, as nvml.h lays them out */

typedef int nvmlReturn_t; /* an enum in nvml.h */

#define NVML_SUCCESS 0
#define NVML_ERROR_UNINITIALIZED 1
#define NVML_ERROR_INVALID_ARGUMENT 2
#define NVML_ERROR_NOT_SUPPORTED 3
#define NVML_ERROR_NO_PERMISSION 4
#define NVML_ERROR_ALREADY_INITIALIZED 5
#define NVML_ERROR_NOT_FOUND 6
#define NVML_ERROR_INSUFFICIENT_SIZE 7
#define NVML_ERROR_INSUFFICIENT_POWER 8
#define NVML_ERROR_DRIVER_NOT_LOADED 9
#define NVML_ERROR_TIMEOUT 10
#define NVML_ERROR_IRQ_ISSUE 11
#define NVML_ERROR_LIBRARY_NOT_FOUND 12
#define NVML_ERROR_FUNCTION_NOT_FOUND 13
#define NVML_ERROR_CORRUPTED_INFOROM 14
#define NVML_ERROR_GPU_IS_LOST 15
#define NVML_ERROR_RESET_REQUIRED 16
#define NVML_ERROR_OPERATING_SYSTEM 17
#define NVML_ERROR_LIB_RM_VERSION_MISMATCH 18
#define NVML_ERROR_IN_USE 19
#define NVML_ERROR_MEMORY 20
#define NVML_ERROR_NO_DATA 21
#define NVML_ERROR_VGPU_ECC_NOT_SUPPORTED 22
#define NVML_ERROR_INSUFFICIENT_RESOURCES 23
#define NVML_ERROR_FREQ_NOT_SUPPORTED 24
#define NVML_ERROR_ARGUMENT_VERSION_MISMATCH 25
#define NVML_ERROR_DEPRECATED 26
#define NVML_ERROR_NOT_READY 27
#define NVML_ERROR_GPU_NOT_FOUND 28
#define NVML_ERROR_INVALID_STATE 29
#define NVML_ERROR_UNKNOWN 999

#define NVML_VALUE_NOT_AVAILABLE_ULL ((unsigned long long)-1)

typedef struct nvmlDevice_st *nvmlDevice_t;

typedef struct nvmlPciInfo_st {
    char busIdLegacy[16];
    unsigned int domain;
    unsigned int bus;
    unsigned int device;
    unsigned int pciDeviceId;
    unsigned int pciSubSystemId;
    char busId[32];
} nvmlPciInfo_t;

typedef struct nvmlUtilization_st {
    unsigned int gpu;
    unsigned int memory;
} nvmlUtilization_t;

typedef struct nvmlMemory_st {
    unsigned long long total;
    unsigned long long free;
    unsigned long long used;
} nvmlMemory_t;

typedef struct nvmlProcessInfo_st {
    unsigned int pid;
    unsigned long long usedGpuMemory;
    unsigned int gpuInstanceId;
    unsigned int computeInstanceId;
} nvmlProcessInfo_t;

typedef unsigned int nvmlTemperatureSensors_t; /* enums in nvml.h */
typedef unsigned int nvmlClockType_t;
typedef unsigned int nvmlComputeMode_t;

#define NVML_TEMPERATURE_GPU 0
#define NVML_CLOCK_GRAPHICS 0
#define NVML_CLOCK_SM 1
#define NVML_CLOCK_MEM 2
#define NVML_CLOCK_VIDEO 3
#define NVML_CLOCK_COUNT 4

_Static_assert(sizeof(nvmlPciInfo_t) == 68, "nvmlPciInfo_t layout");
_Static_assert(sizeof(nvmlMemory_t) == 24, "nvmlMemory_t layout");
_Static_assert(sizeof(nvmlProcessInfo_t) == 24, "nvmlProcessInfo_t layout");

/* ---------------------------------------------------------------- instance state (this loaded copy) */

#define MAX_DEVICES 16
#define MAX_STATE_BYTES (1 << 20)
#define MAX_PROCS 4096

struct nvmlDevice_st {
    unsigned int index;
    unsigned long long polls;      /* nvmlDeviceGetUtilizationRates calls that reached the device */
    unsigned long long proc_calls; /* successful nvmlDeviceGetComputeRunningProcesses_v3 calls */
    int lost_latched;              /* lost_after_polls was exceeded: lost for good */
};

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned int g_init_count;
static struct nvmlDevice_st g_devices[MAX_DEVICES] = {
    {0, 0, 0, 0},  {1, 0, 0, 0},  {2, 0, 0, 0},  {3, 0, 0, 0},  {4, 0, 0, 0},  {5, 0, 0, 0},
    {6, 0, 0, 0},  {7, 0, 0, 0},  {8, 0, 0, 0},  {9, 0, 0, 0},  {10, 0, 0, 0}, {11, 0, 0, 0},
    {12, 0, 0, 0}, {13, 0, 0, 0}, {14, 0, 0, 0}, {15, 0, 0, 0},
};

static pthread_once_t g_dir_once = PTHREAD_ONCE_INIT;
static char g_state_path[PATH_MAX];
static char g_log_path[PATH_MAX];

static void locate_dir(void) {
    Dl_info info;
    char dir[PATH_MAX];
    memset(&info, 0, sizeof(info));
    /* The address looked up is a file-local object's: the address of an exported function could be bound,
     * through the GOT, to another loaded copy of this library that exports the same name. */
    if (dladdr(&g_init_count, &info) == 0 || info.dli_fname == NULL) {
        snprintf(dir, sizeof(dir), ".");
    } else {
        char resolved[PATH_MAX];
        const char *path = realpath(info.dli_fname, resolved) != NULL ? resolved : info.dli_fname;
        const char *slash = strrchr(path, '/');
        if (slash == NULL) {
            snprintf(dir, sizeof(dir), ".");
        } else if (slash == path) {
            snprintf(dir, sizeof(dir), "/");
        } else {
            size_t n = (size_t)(slash - path);
            if (n >= sizeof(dir)) n = sizeof(dir) - 1;
            memcpy(dir, path, n);
            dir[n] = '\0';
        }
    }
    if (snprintf(g_state_path, sizeof(g_state_path), "%s/state", dir) >= (int)sizeof(g_state_path))
        g_state_path[0] = '\0';
    if (snprintf(g_log_path, sizeof(g_log_path), "%s/calls.log", dir) >= (int)sizeof(g_log_path))
        g_log_path[0] = '\0';
}

/* ---------------------------------------------------------------- the state file */

typedef struct {
    const char *key;
    const char *value;
} kv_t;

typedef struct {
    char *buf;
    kv_t *kv;
    size_t n;
} state_t;

static char *trim(char *s) {
    char *end;
    while (*s == ' ' || *s == '\t' || *s == '\r' || *s == '\v' || *s == '\f') s++;
    end = s + strlen(s);
    while (end > s && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\r' || end[-1] == '\v' ||
                       end[-1] == '\f'))
        *--end = '\0';
    return s;
}

/* Reads the state file; a missing or unreadable file is an empty state (0 devices, init succeeds). */
static void state_load(state_t *st) {
    int fd;
    size_t len = 0, cap = 4096, lines = 1, i;
    char *line, *next;

    st->buf = NULL;
    st->kv = NULL;
    st->n = 0;
    pthread_once(&g_dir_once, locate_dir);
    if (g_state_path[0] == '\0') return;
    fd = open(g_state_path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return;
    st->buf = malloc(cap + 1);
    while (st->buf != NULL) {
        ssize_t r;
        if (len == cap) {
            char *grown;
            if (cap >= MAX_STATE_BYTES) break;
            cap *= 2;
            grown = realloc(st->buf, cap + 1);
            if (grown == NULL) break;
            st->buf = grown;
        }
        r = read(fd, st->buf + len, cap - len);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        len += (size_t)r;
    }
    close(fd);
    if (st->buf == NULL) return;
    st->buf[len] = '\0';

    for (i = 0; i < len; i++)
        if (st->buf[i] == '\n') lines++;
    st->kv = calloc(lines, sizeof(kv_t));
    if (st->kv == NULL) return;

    for (line = st->buf; line != NULL; line = next) {
        char *eq, *key, *value;
        next = strchr(line, '\n');
        if (next != NULL) *next++ = '\0';
        line = trim(line);
        if (*line == '\0' || *line == '#') continue;
        eq = strchr(line, '=');
        if (eq == NULL) continue;
        *eq = '\0';
        key = trim(line);
        value = trim(eq + 1);
        if (*key == '\0') continue;
        st->kv[st->n].key = key;
        st->kv[st->n].value = value;
        st->n++;
    }
}

static void state_free(state_t *st) {
    free(st->kv);
    free(st->buf);
    st->kv = NULL;
    st->buf = NULL;
    st->n = 0;
}

/* The value of `key`, the last one if repeated, or NULL. */
static const char *get(const state_t *st, const char *key) {
    size_t i = st->n;
    while (i-- > 0)
        if (strcmp(st->kv[i].key, key) == 0) return st->kv[i].value;
    return NULL;
}

static const char *get_dev(const state_t *st, unsigned int dev, const char *field) {
    char key[256];
    if (snprintf(key, sizeof(key), "dev.%u.%s", dev, field) >= (int)sizeof(key)) return NULL;
    return get(st, key);
}

/* Unsigned 64-bit decimal, or hex with 0x. Returns 0 (absent) when missing or malformed. */
static int parse_u64(const char *s, unsigned long long *out) {
    char *end;
    int base = 10;
    if (s == NULL || *s == '\0' || *s == '-' || *s == '+') return 0;
    if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
        base = 16;
        s += 2;
        if (*s == '\0') return 0;
    }
    errno = 0;
    *out = strtoull(s, &end, base);
    return errno == 0 && *end == '\0';
}

static int parse_int(const char *s, long *out) {
    char *end;
    if (s == NULL || *s == '\0') return 0;
    errno = 0;
    *out = strtol(s, &end, 10);
    return errno == 0 && *end == '\0';
}

static int get_u64(const state_t *st, const char *key, unsigned long long *out) {
    return parse_u64(get(st, key), out);
}

static int get_dev_u64(const state_t *st, unsigned int dev, const char *field, unsigned long long *out) {
    return parse_u64(get_dev(st, dev, field), out);
}

/* A forced return code `rc.<fn>` (or `dev.<i>.rc.<fn>`); 0 = none (behave normally). */
static nvmlReturn_t rc_override(const state_t *st, const char *fn, int dev) {
    char key[256];
    long v;
    if (dev >= 0 && snprintf(key, sizeof(key), "dev.%d.rc.%s", dev, fn) < (int)sizeof(key) &&
        parse_int(get(st, key), &v) && v != 0)
        return (nvmlReturn_t)v;
    if (snprintf(key, sizeof(key), "rc.%s", fn) < (int)sizeof(key) && parse_int(get(st, key), &v) && v != 0)
        return (nvmlReturn_t)v;
    return NVML_SUCCESS;
}

static unsigned int device_count(const state_t *st) {
    unsigned long long n = 0;
    if (!get_u64(st, "device_count", &n)) return 0;
    return n > MAX_DEVICES ? MAX_DEVICES : (unsigned int)n;
}

/* ---------------------------------------------------------------- calls: prologue, log, epilogue */

typedef struct {
    const char *fn;
    state_t st;
    int dev; /* device index for the log, -1 for none */
} call_t;

static void call_begin(call_t *c, const char *fn) {
    c->fn = fn;
    c->dev = -1;
    state_load(&c->st);
}

/* Logs the call (one write(), O_APPEND, so lines of concurrent callers never mix) and returns rc. */
static nvmlReturn_t call_end(call_t *c, nvmlReturn_t rc) {
    char line[320];
    int n, fd, saved_errno = errno;
    if (c->dev >= 0)
        n = snprintf(line, sizeof(line), "%s %d %d\n", c->fn, c->dev, rc);
    else
        n = snprintf(line, sizeof(line), "%s - %d\n", c->fn, rc);
    if (n > 0 && n < (int)sizeof(line) && g_log_path[0] != '\0') {
        fd = open(g_log_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
        if (fd >= 0) {
            ssize_t w;
            do {
                w = write(fd, line, (size_t)n);
            } while (w < 0 && errno == EINTR);
            close(fd);
        }
    }
    state_free(&c->st);
    errno = saved_errno;
    return rc;
}

static int initialized(void) {
    int yes;
    pthread_mutex_lock(&g_lock);
    yes = g_init_count > 0;
    pthread_mutex_unlock(&g_lock);
    return yes;
}

/* `hang_ms`: a hung driver. Sleeps without holding the lock, so several callers can hang at once. */
static void hang(const state_t *st) {
    unsigned long long ms = 0;
    struct timespec ts;
    if (!get_u64(st, "hang_ms", &ms) || ms == 0) return;
    ts.tv_sec = (time_t)(ms / 1000);
    ts.tv_nsec = (long)(ms % 1000) * 1000000L;
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* Prologue of the system-level functions (no hang). */
static nvmlReturn_t system_begin(call_t *c, const char *fn) {
    call_begin(c, fn);
    if (!initialized()) return NVML_ERROR_UNINITIALIZED;
    return rc_override(&c->st, fn, -1);
}

/* The fake's device for a handle, or NULL if the handle is not one of ours (or beyond device_count). */
static struct nvmlDevice_st *lookup(const state_t *st, nvmlDevice_t handle) {
    unsigned int i, n = device_count(st);
    for (i = 0; i < n; i++)
        if (handle == &g_devices[i]) return &g_devices[i];
    return NULL;
}

/*
 * Prologue of the functions that take a device handle: hang, init check, handle check, lost GPU, forced rc.
 * `is_poll`: this call is nvmlDeviceGetUtilizationRates, which lost_after_polls counts.
 */
static nvmlReturn_t device_begin(call_t *c, const char *fn, nvmlDevice_t handle, int is_poll,
                                 struct nvmlDevice_st **out) {
    struct nvmlDevice_st *d;
    unsigned long long flag = 0, after = 0;
    int has_after, lost;

    call_begin(c, fn);
    hang(&c->st);
    if (!initialized()) return NVML_ERROR_UNINITIALIZED;
    d = lookup(&c->st, handle);
    if (d == NULL) return NVML_ERROR_INVALID_ARGUMENT;
    c->dev = (int)d->index;
    *out = d;

    has_after = get_dev_u64(&c->st, d->index, "lost_after_polls", &after);
    pthread_mutex_lock(&g_lock);
    if (is_poll) d->polls++;
    if (has_after && d->polls > after) d->lost_latched = 1;
    lost = d->lost_latched;
    pthread_mutex_unlock(&g_lock);
    if (lost || (get_dev_u64(&c->st, d->index, "lost", &flag) && flag != 0)) return NVML_ERROR_GPU_IS_LOST;

    return rc_override(&c->st, fn, c->dev);
}

static nvmlReturn_t copy_string(char *dst, unsigned int length, const char *src) {
    size_t n;
    if (src == NULL) return NVML_ERROR_NOT_SUPPORTED;
    n = strlen(src);
    if ((unsigned long long)length < (unsigned long long)n + 1) return NVML_ERROR_INSUFFICIENT_SIZE;
    memcpy(dst, src, n + 1);
    return NVML_SUCCESS;
}

/* ---------------------------------------------------------------- init / shutdown / errors */

static nvmlReturn_t do_init(const char *fn) {
    call_t c;
    long v = 0;
    nvmlReturn_t rc;
    call_begin(&c, fn);
    rc = rc_override(&c.st, fn, -1);
    if (rc == NVML_SUCCESS && parse_int(get(&c.st, "init"), &v)) rc = (nvmlReturn_t)v;
    if (rc == NVML_SUCCESS) {
        pthread_mutex_lock(&g_lock);
        g_init_count++;
        pthread_mutex_unlock(&g_lock);
    }
    return call_end(&c, rc);
}

EXPORT nvmlReturn_t nvmlInit_v2(void) { return do_init("nvmlInit_v2"); }

EXPORT nvmlReturn_t nvmlInit(void) { return do_init("nvmlInit"); }

EXPORT nvmlReturn_t nvmlInitWithFlags(unsigned int flags) {
    (void)flags;
    return do_init("nvmlInitWithFlags");
}

EXPORT nvmlReturn_t nvmlShutdown(void) {
    call_t c;
    nvmlReturn_t rc;
    call_begin(&c, "nvmlShutdown");
    pthread_mutex_lock(&g_lock);
    if (g_init_count == 0) {
        rc = NVML_ERROR_UNINITIALIZED;
    } else {
        rc = rc_override(&c.st, "nvmlShutdown", -1);
        if (rc == NVML_SUCCESS) g_init_count--;
    }
    pthread_mutex_unlock(&g_lock);
    return call_end(&c, rc);
}

EXPORT const char *nvmlErrorString(nvmlReturn_t result) {
    switch (result) {
    case NVML_SUCCESS: return "Success";
    case NVML_ERROR_UNINITIALIZED: return "Uninitialized";
    case NVML_ERROR_INVALID_ARGUMENT: return "Invalid Argument";
    case NVML_ERROR_NOT_SUPPORTED: return "Not Supported";
    case NVML_ERROR_NO_PERMISSION: return "Insufficient Permissions";
    case NVML_ERROR_ALREADY_INITIALIZED: return "Already Initialized";
    case NVML_ERROR_NOT_FOUND: return "Not Found";
    case NVML_ERROR_INSUFFICIENT_SIZE: return "Insufficient Size";
    case NVML_ERROR_INSUFFICIENT_POWER: return "Insufficient External Power";
    case NVML_ERROR_DRIVER_NOT_LOADED: return "Driver Not Loaded";
    case NVML_ERROR_TIMEOUT: return "Timeout";
    case NVML_ERROR_IRQ_ISSUE: return "Interrupt request issue";
    case NVML_ERROR_LIBRARY_NOT_FOUND: return "NVML Shared Library Not Found";
    case NVML_ERROR_FUNCTION_NOT_FOUND: return "Function Not Found";
    case NVML_ERROR_CORRUPTED_INFOROM: return "Corrupted infoROM";
    case NVML_ERROR_GPU_IS_LOST: return "GPU is lost";
    case NVML_ERROR_RESET_REQUIRED: return "GPU requires restart";
    case NVML_ERROR_OPERATING_SYSTEM: return "The operating system has blocked the request.";
    case NVML_ERROR_LIB_RM_VERSION_MISMATCH: return "RM has detected an NVML/RM version mismatch.";
    case NVML_ERROR_IN_USE: return "In use by another client";
    case NVML_ERROR_MEMORY: return "Insufficient Memory";
    case NVML_ERROR_NO_DATA: return "No data";
    case NVML_ERROR_VGPU_ECC_NOT_SUPPORTED:
        return "The requested vgpu operation is not available on target device, because ECC is enabled";
    case NVML_ERROR_INSUFFICIENT_RESOURCES: return "Ran out of critical resources, other than memory";
    case NVML_ERROR_FREQ_NOT_SUPPORTED: return "The requested frequency is not supported";
    case NVML_ERROR_ARGUMENT_VERSION_MISMATCH: return "The provided version is invalid/unsupported";
    case NVML_ERROR_DEPRECATED: return "The requested functionality has been deprecated";
    case NVML_ERROR_NOT_READY: return "The system is not ready for the request";
    case NVML_ERROR_GPU_NOT_FOUND: return "The GPU could not be found";
    case NVML_ERROR_INVALID_STATE: return "The resource is in an invalid state";
    case NVML_ERROR_UNKNOWN: return "Unknown Error";
    default: return "Unknown Error";
    }
}

/* ---------------------------------------------------------------- system */

static nvmlReturn_t system_string(const char *fn, const char *key, char *out, unsigned int length) {
    call_t c;
    nvmlReturn_t rc = system_begin(&c, fn);
    if (rc == NVML_SUCCESS) rc = out == NULL ? NVML_ERROR_INVALID_ARGUMENT : copy_string(out, length, get(&c.st, key));
    return call_end(&c, rc);
}

EXPORT nvmlReturn_t nvmlSystemGetDriverVersion(char *version, unsigned int length) {
    return system_string("nvmlSystemGetDriverVersion", "driver_version", version, length);
}

EXPORT nvmlReturn_t nvmlSystemGetNVMLVersion(char *version, unsigned int length) {
    return system_string("nvmlSystemGetNVMLVersion", "nvml_version", version, length);
}

static nvmlReturn_t cuda_version(const char *fn, int *out) {
    call_t c;
    long v = 0;
    nvmlReturn_t rc = system_begin(&c, fn);
    if (rc == NVML_SUCCESS) {
        if (out == NULL)
            rc = NVML_ERROR_INVALID_ARGUMENT;
        else if (!parse_int(get(&c.st, "cuda_driver_version"), &v))
            rc = NVML_ERROR_NOT_SUPPORTED;
        else
            *out = (int)v;
    }
    return call_end(&c, rc);
}

EXPORT nvmlReturn_t nvmlSystemGetCudaDriverVersion(int *cudaDriverVersion) {
    return cuda_version("nvmlSystemGetCudaDriverVersion", cudaDriverVersion);
}

EXPORT nvmlReturn_t nvmlSystemGetCudaDriverVersion_v2(int *cudaDriverVersion) {
    return cuda_version("nvmlSystemGetCudaDriverVersion_v2", cudaDriverVersion);
}

/* ---------------------------------------------------------------- device enumeration */

EXPORT nvmlReturn_t nvmlDeviceGetCount_v2(unsigned int *deviceCount) {
    call_t c;
    nvmlReturn_t rc;
    call_begin(&c, "nvmlDeviceGetCount_v2");
    hang(&c.st);
    if (!initialized())
        rc = NVML_ERROR_UNINITIALIZED;
    else if ((rc = rc_override(&c.st, c.fn, -1)) != NVML_SUCCESS)
        ;
    else if (deviceCount == NULL)
        rc = NVML_ERROR_INVALID_ARGUMENT;
    else
        *deviceCount = device_count(&c.st);
    return call_end(&c, rc);
}

EXPORT nvmlReturn_t nvmlDeviceGetHandleByIndex_v2(unsigned int index, nvmlDevice_t *device) {
    call_t c;
    nvmlReturn_t rc;
    call_begin(&c, "nvmlDeviceGetHandleByIndex_v2");
    hang(&c.st);
    if (index <= INT_MAX) c.dev = (int)index;
    if (!initialized())
        rc = NVML_ERROR_UNINITIALIZED;
    else if (device == NULL || index >= device_count(&c.st))
        rc = NVML_ERROR_INVALID_ARGUMENT;
    else if ((rc = rc_override(&c.st, c.fn, (int)index)) != NVML_SUCCESS)
        ;
    else
        *device = &g_devices[index]; /* a lost GPU still has a handle */
    return call_end(&c, rc);
}

/* ---------------------------------------------------------------- device getters */

#define DEVICE_BEGIN(fn, handle, is_poll)                                                                     \
    call_t c;                                                                                                 \
    struct nvmlDevice_st *d = NULL;                                                                           \
    nvmlReturn_t rc = device_begin(&c, fn, handle, is_poll, &d);                                              \
    if (rc != NVML_SUCCESS) return call_end(&c, rc);                                                          \
    (void)d

EXPORT nvmlReturn_t nvmlDeviceGetName(nvmlDevice_t device, char *name, unsigned int length) {
    DEVICE_BEGIN("nvmlDeviceGetName", device, 0);
    rc = name == NULL ? NVML_ERROR_INVALID_ARGUMENT : copy_string(name, length, get_dev(&c.st, d->index, "name"));
    return call_end(&c, rc);
}

EXPORT nvmlReturn_t nvmlDeviceGetUUID(nvmlDevice_t device, char *uuid, unsigned int length) {
    DEVICE_BEGIN("nvmlDeviceGetUUID", device, 0);
    rc = uuid == NULL ? NVML_ERROR_INVALID_ARGUMENT : copy_string(uuid, length, get_dev(&c.st, d->index, "uuid"));
    return call_end(&c, rc);
}

/* "DDDDDDDD:BB:DD.F" (or a shorter domain): the hex fields. Returns 0 when malformed. */
static int parse_bus_id(const char *s, unsigned int *domain, unsigned int *bus, unsigned int *dev,
                        unsigned int *fn) {
    unsigned long long v[4];
    const char seps[4] = {':', ':', '.', '\0'};
    int i;
    for (i = 0; i < 4; i++) {
        char *end;
        if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f') || (*s >= 'A' && *s <= 'F'))) return 0;
        errno = 0;
        v[i] = strtoull(s, &end, 16);
        if (errno != 0 || *end != seps[i] || v[i] > 0xFFFFFFFFull) return 0;
        s = end + (seps[i] != '\0');
    }
    *domain = (unsigned int)v[0];
    *bus = (unsigned int)v[1];
    *dev = (unsigned int)v[2];
    *fn = (unsigned int)v[3];
    return 1;
}

EXPORT nvmlReturn_t nvmlDeviceGetPciInfo_v3(nvmlDevice_t device, nvmlPciInfo_t *pci) {
    const char *bus_id;
    unsigned int domain = 0, bus = 0, dev = 0, func = 0;
    unsigned long long id = 0;
    DEVICE_BEGIN("nvmlDeviceGetPciInfo_v3", device, 0);
    bus_id = get_dev(&c.st, d->index, "pci_bus_id");
    if (pci == NULL) {
        rc = NVML_ERROR_INVALID_ARGUMENT;
    } else if (bus_id == NULL) {
        rc = NVML_ERROR_NOT_SUPPORTED;
    } else {
        memset(pci, 0, sizeof(*pci));
        snprintf(pci->busId, sizeof(pci->busId), "%s", bus_id);
        if (parse_bus_id(bus_id, &domain, &bus, &dev, &func)) {
            pci->domain = domain;
            pci->bus = bus;
            pci->device = dev;
            /* NVML_DEVICE_PCI_BUS_ID_LEGACY_FMT: the 4-digit-domain form, in 16 bytes */
            snprintf(pci->busIdLegacy, sizeof(pci->busIdLegacy), "%04X:%02X:%02X.%X", domain, bus, dev, func);
        } else {
            snprintf(pci->busIdLegacy, sizeof(pci->busIdLegacy), "%s", bus_id);
        }
        if (get_dev_u64(&c.st, d->index, "pci_device_id", &id)) pci->pciDeviceId = (unsigned int)id;
        if (get_dev_u64(&c.st, d->index, "pci_subsystem_id", &id)) pci->pciSubSystemId = (unsigned int)id;
    }
    return call_end(&c, rc);
}

EXPORT nvmlReturn_t nvmlDeviceGetUtilizationRates(nvmlDevice_t device, nvmlUtilization_t *utilization) {
    unsigned long long gpu = 0, mem = 0;
    DEVICE_BEGIN("nvmlDeviceGetUtilizationRates", device, 1);
    if (utilization == NULL)
        rc = NVML_ERROR_INVALID_ARGUMENT;
    else if (!get_dev_u64(&c.st, d->index, "util_gpu", &gpu) || !get_dev_u64(&c.st, d->index, "util_memory", &mem))
        rc = NVML_ERROR_NOT_SUPPORTED;
    else {
        utilization->gpu = (unsigned int)gpu;
        utilization->memory = (unsigned int)mem;
    }
    return call_end(&c, rc);
}

EXPORT nvmlReturn_t nvmlDeviceGetMemoryInfo(nvmlDevice_t device, nvmlMemory_t *memory) {
    unsigned long long total = 0, used = 0, free_ = 0;
    DEVICE_BEGIN("nvmlDeviceGetMemoryInfo", device, 0);
    if (memory == NULL)
        rc = NVML_ERROR_INVALID_ARGUMENT;
    else if (!get_dev_u64(&c.st, d->index, "mem_total", &total) || !get_dev_u64(&c.st, d->index, "mem_used", &used) ||
             !get_dev_u64(&c.st, d->index, "mem_free", &free_))
        rc = NVML_ERROR_NOT_SUPPORTED;
    else {
        memory->total = total;
        memory->free = free_;
        memory->used = used;
    }
    return call_end(&c, rc);
}

/* A getter of one unsigned int field. */
static nvmlReturn_t get_uint_field(call_t *c, unsigned int dev, const char *field, unsigned int *out) {
    unsigned long long v = 0;
    if (out == NULL) return NVML_ERROR_INVALID_ARGUMENT;
    if (!get_dev_u64(&c->st, dev, field, &v)) return NVML_ERROR_NOT_SUPPORTED;
    *out = (unsigned int)v;
    return NVML_SUCCESS;
}

EXPORT nvmlReturn_t nvmlDeviceGetTemperature(nvmlDevice_t device, nvmlTemperatureSensors_t sensorType,
                                             unsigned int *temp) {
    DEVICE_BEGIN("nvmlDeviceGetTemperature", device, 0);
    if (sensorType != NVML_TEMPERATURE_GPU)
        rc = NVML_ERROR_INVALID_ARGUMENT;
    else
        rc = get_uint_field(&c, d->index, "temperature", temp);
    return call_end(&c, rc);
}

EXPORT nvmlReturn_t nvmlDeviceGetPowerUsage(nvmlDevice_t device, unsigned int *power) {
    DEVICE_BEGIN("nvmlDeviceGetPowerUsage", device, 0);
    rc = get_uint_field(&c, d->index, "power_mw", power);
    return call_end(&c, rc);
}

EXPORT nvmlReturn_t nvmlDeviceGetEnforcedPowerLimit(nvmlDevice_t device, unsigned int *limit) {
    DEVICE_BEGIN("nvmlDeviceGetEnforcedPowerLimit", device, 0);
    rc = get_uint_field(&c, d->index, "power_limit_mw", limit);
    return call_end(&c, rc);
}

EXPORT nvmlReturn_t nvmlDeviceGetComputeMode(nvmlDevice_t device, nvmlComputeMode_t *mode) {
    DEVICE_BEGIN("nvmlDeviceGetComputeMode", device, 0);
    rc = get_uint_field(&c, d->index, "compute_mode", mode);
    return call_end(&c, rc);
}

EXPORT nvmlReturn_t nvmlDeviceGetClockInfo(nvmlDevice_t device, nvmlClockType_t type, unsigned int *clock) {
    DEVICE_BEGIN("nvmlDeviceGetClockInfo", device, 0);
    if (type >= NVML_CLOCK_COUNT || clock == NULL)
        rc = NVML_ERROR_INVALID_ARGUMENT;
    else if (type == NVML_CLOCK_SM)
        rc = get_uint_field(&c, d->index, "clock_sm", clock);
    else if (type == NVML_CLOCK_MEM)
        rc = get_uint_field(&c, d->index, "clock_mem", clock);
    else
        rc = NVML_ERROR_NOT_SUPPORTED; /* GRAPHICS, VIDEO */
    return call_end(&c, rc);
}

EXPORT nvmlReturn_t nvmlDeviceGetTotalEnergyConsumption(nvmlDevice_t device, unsigned long long *energy) {
    unsigned long long v = 0;
    DEVICE_BEGIN("nvmlDeviceGetTotalEnergyConsumption", device, 0);
    if (energy == NULL)
        rc = NVML_ERROR_INVALID_ARGUMENT;
    else if (!get_dev_u64(&c.st, d->index, "energy_mj", &v))
        rc = NVML_ERROR_NOT_SUPPORTED;
    else
        *energy = v;
    return call_end(&c, rc);
}

/* ---------------------------------------------------------------- processes */

typedef struct {
    unsigned int pid;
    unsigned long long bytes;
} proc_t;

/* `<pid>:<bytes>,...` with `self` for getpid() and `na` for NVML_VALUE_NOT_AVAILABLE; malformed entries are
 * skipped. Returns the number parsed into out (at most max). */
static unsigned int parse_procs(const char *spec, proc_t *out, unsigned int max) {
    unsigned int n = 0;
    char item[128];
    while (spec != NULL && *spec != '\0' && n < max) {
        const char *comma = strchr(spec, ',');
        size_t len = comma != NULL ? (size_t)(comma - spec) : strlen(spec);
        char *colon, *pid, *bytes;
        unsigned long long v;
        if (len < sizeof(item)) {
            memcpy(item, spec, len);
            item[len] = '\0';
            colon = strchr(item, ':');
            if (colon != NULL) {
                *colon = '\0';
                pid = trim(item);
                bytes = trim(colon + 1);
                if (strcmp(pid, "self") == 0)
                    out[n].pid = (unsigned int)getpid();
                else if (parse_u64(pid, &v) && v <= 0xFFFFFFFFull)
                    out[n].pid = (unsigned int)v;
                else
                    pid = NULL;
                if (pid != NULL) {
                    if (strcmp(bytes, "na") == 0) {
                        out[n].bytes = NVML_VALUE_NOT_AVAILABLE_ULL;
                        n++;
                    } else if (parse_u64(bytes, &v)) {
                        out[n].bytes = v;
                        n++;
                    }
                }
            }
        }
        spec = comma != NULL ? comma + 1 : NULL;
    }
    return n;
}

EXPORT nvmlReturn_t nvmlDeviceGetComputeRunningProcesses_v3(nvmlDevice_t device, unsigned int *infoCount,
                                                            nvmlProcessInfo_t *infos) {
    static proc_t none;
    proc_t *procs = &none;
    unsigned int n = 0, i;
    unsigned long long growth = 0, k;
    const char *spec;
    DEVICE_BEGIN("nvmlDeviceGetComputeRunningProcesses_v3", device, 0);

    if (infoCount == NULL || (infos == NULL && *infoCount != 0)) return call_end(&c, NVML_ERROR_INVALID_ARGUMENT);
    spec = get_dev(&c.st, d->index, "procs");
    if (spec != NULL && *spec != '\0') {
        size_t items = 1;
        const char *p;
        for (p = spec; *p != '\0'; p++)
            if (*p == ',') items++;
        if (items > MAX_PROCS) items = MAX_PROCS;
        procs = malloc(items * sizeof(proc_t));
        if (procs == NULL) return call_end(&c, NVML_ERROR_MEMORY);
        n = parse_procs(spec, procs, (unsigned int)items);
    }
    if (n > *infoCount) {
        *infoCount = n;
        rc = NVML_ERROR_INSUFFICIENT_SIZE;
    } else {
        get_dev_u64(&c.st, d->index, "proc_growth", &growth);
        pthread_mutex_lock(&g_lock);
        k = ++d->proc_calls; /* this call counts: it succeeds */
        pthread_mutex_unlock(&g_lock);
        for (i = 0; i < n; i++) {
            infos[i].pid = procs[i].pid;
            infos[i].usedGpuMemory =
                procs[i].bytes == NVML_VALUE_NOT_AVAILABLE_ULL ? procs[i].bytes : procs[i].bytes + k * growth;
            infos[i].gpuInstanceId = 0xFFFFFFFFu; /* MIG off */
            infos[i].computeInstanceId = 0xFFFFFFFFu;
        }
        *infoCount = n;
        rc = NVML_SUCCESS;
    }
    if (procs != &none) free(procs);
    return call_end(&c, rc);
}
