/*
 * libtilt: hosts the .NET runtime (nethost + hostfxr) and forwards the C API of tilt.h to the [UnmanagedCallersOnly]
 * exports of Tilt.Interop.dll. All logic, validation and handle checking live on the managed side; this file keeps
 * only what must work without the runtime: the version, status names, default options, the per-thread last error,
 * and the start-up of the runtime itself.
 */
#define _GNU_SOURCE
#include "tilt.h"

#include <coreclr_delegates.h>
#include <hostfxr.h>
#include <nethost.h>

#include <dlfcn.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define MANAGED_ASSEMBLY "Tilt.Interop.dll"
#define MANAGED_RUNTIMECONFIG "Tilt.Interop.runtimeconfig.json"
#define MANAGED_TYPE "Tilt.Interop.Exports, Tilt.Interop"

/* ---------------------------------------------------------------------------------------------------------- */
/* Last error: one fixed buffer per thread, so recording an error can neither fail nor leak at thread exit.    */
/* ---------------------------------------------------------------------------------------------------------- */

enum { LAST_ERROR_CAPACITY = 2048 };
static _Thread_local char t_last_error[LAST_ERROR_CAPACITY];

/* Copies msg, cutting it at a UTF-8 character boundary when it does not fit. */
static void set_error(const char * msg) {
    size_t n = strlen(msg);
    if (n >= LAST_ERROR_CAPACITY) {
        n = LAST_ERROR_CAPACITY - 1;
        while (n > 0 && ((unsigned char)msg[n] & 0xC0) == 0x80) n--; /* do not split a multi-byte character */
    }
    memcpy(t_last_error, msg, n);
    t_last_error[n] = '\0';
}

static void set_errorf(const char * fmt, ...) __attribute__((format(printf, 1, 2)));
static void set_errorf(const char * fmt, ...) {
    char buf[LAST_ERROR_CAPACITY];
    va_list args;
    va_start(args, fmt);
    vsnprintf(buf, sizeof buf, fmt, args);
    va_end(args);
    set_error(buf);
}

/* Handed to the managed side, which calls it on the thread of the failing call. */
static void managed_set_error(const char * utf8) { set_error(utf8 != NULL ? utf8 : "(no message)"); }

TILT_API const char * tilt_last_error(void) { return t_last_error; }

TILT_API uint32_t tilt_api_version(void) { return TILT_API_VERSION; }

TILT_API const char * tilt_status_name(tilt_status status) {
    switch (status) {
        case TILT_OK: return "TILT_OK";
        case TILT_ERR_INVALID_ARGUMENT: return "TILT_ERR_INVALID_ARGUMENT";
        case TILT_ERR_INVALID_HANDLE: return "TILT_ERR_INVALID_HANDLE";
        case TILT_ERR_BUFFER_TOO_SMALL: return "TILT_ERR_BUFFER_TOO_SMALL";
        case TILT_ERR_NOT_INITIALIZED: return "TILT_ERR_NOT_INITIALIZED";
        case TILT_ERR_RUNTIME: return "TILT_ERR_RUNTIME";
        case TILT_ERR_MODEL_LOAD: return "TILT_ERR_MODEL_LOAD";
        case TILT_ERR_ENGINE: return "TILT_ERR_ENGINE";
        case TILT_ERR_CALLBACK: return "TILT_ERR_CALLBACK";
        case TILT_ERR_CANCELLED: return "TILT_ERR_CANCELLED";
        case TILT_ERR_BAD_STATE: return "TILT_ERR_BAD_STATE";
        case TILT_ERR_UNSUPPORTED: return "TILT_ERR_UNSUPPORTED";
        case TILT_ERR_INTERNAL: return "TILT_ERR_INTERNAL";
        case TILT_ERR_BUSY: return "TILT_ERR_BUSY";
        default: return "TILT_UNKNOWN_STATUS";
    }
}

/* ---------------------------------------------------------------------------------------------------------- */
/* Defaults (the managed side checks them against the engine's at init)                                        */
/* ---------------------------------------------------------------------------------------------------------- */

TILT_API tilt_runtime_options tilt_runtime_default_options(void) {
    tilt_runtime_options o;
    memset(&o, 0, sizeof o);
    o.struct_size = sizeof o;
    return o;
}

TILT_API tilt_model_options tilt_model_default_options(void) {
    tilt_model_options o;
    memset(&o, 0, sizeof o);
    o.struct_size = sizeof o;
    o.backend = TILT_BACKEND_AUTO;
    return o;
}

TILT_API tilt_request_options tilt_request_default_options(void) {
    tilt_request_options o;
    memset(&o, 0, sizeof o);
    o.struct_size = sizeof o;
    o.strategy = TILT_STRATEGY_BLOCKWISE;
    o.samples = 1;
    o.max_tokens = 128;
    o.n = 4;
    o.k = 8;
    o.block_size = 8;
    o.selection = TILT_SELECTION_ARGMAX;
    o.tokenwise_top_k = 16;
    o.top_k = 0;
    o.temperature = 1.0f;
    o.top_p = 1.0f;
    o.threads = 0;
    o.request_id = 0;
    o.beta = 1.0;
    o.seed = 0;
    o.deadline_ms = 0;
    o.alpha = 0.5;
    o.every = 8;
    o.reserved = 0;
    o.stop = NULL;
    o.stop_token_ids = NULL;
    o.n_stop = 0;
    o.n_stop_token_ids = 0;
    o.include_stop = 0;
    o.reserved2 = 0;
    o.lambda = 1.0;
    o.continuation = NULL;
    o.logprobs = 0;
    o.top_logprobs = 0;
    o.beams = 2;
    o.reserved3 = 0;
    return o;
}

/* ---------------------------------------------------------------------------------------------------------- */
/* The managed exports                                                                                         */
/* ---------------------------------------------------------------------------------------------------------- */

/* Mirrors Tilt.Interop.TiltHostAbi. */
typedef struct host_abi {
    uint32_t struct_size;
    uint32_t api_version;
    void (*set_error)(const char *);
    const uint32_t * layout;
    uint32_t layout_length;
    uint32_t reserved;
    const tilt_model_options * model_defaults;
    const tilt_request_options * request_defaults;
} host_abi;


typedef struct exports {
    int32_t (*initialize)(const host_abi *);
    int32_t (*shutdown)(void);
    int32_t (*ping)(void);
    int32_t (*live_handles)(int64_t *);
    int32_t (*model_load)(const char *, const tilt_model_options *, tilt_model **);
    int32_t (*model_get_info)(const tilt_model *, tilt_model_info *);
    int32_t (*model_free)(tilt_model *);
    int32_t (*reward_create_callback)(tilt_reward_fn, void *, const char *, tilt_reward **);
    int32_t (*reward_create_spec)(const tilt_model *, const char *, tilt_reward **);
    int32_t (*reward_load_head)(const tilt_model *, const char *, tilt_reward **);
    int32_t (*reward_free)(tilt_reward *);
    int32_t (*value_load_head)(const tilt_model *, const char *, tilt_value **);
    int32_t (*value_free)(tilt_value *);
    int32_t (*request_create)(tilt_model *, const char *, const tilt_request_options *, const tilt_reward *,
                              const tilt_value *, tilt_request **);
    int32_t (*request_run)(tilt_request *, tilt_stream_fn, void *);
    int32_t (*request_cancel)(tilt_request *);
    int32_t (*request_output_count)(const tilt_request *, int32_t *);
    int32_t (*request_output_text)(const tilt_request *, int32_t, char *, size_t, size_t *);
    int32_t (*request_output_tokens)(const tilt_request *, int32_t, int32_t *, size_t, size_t *);
    int32_t (*request_output_info)(const tilt_request *, int32_t, tilt_output_info *);
    int32_t (*request_free)(tilt_request *);
    int32_t (*request_output_logprobs)(const tilt_request *, int32_t, double *, size_t, size_t *);
    int32_t (*request_output_top_logprobs)(const tilt_request *, int32_t, int32_t *, double *, size_t, size_t *);
} exports;

/* Managed method name of each slot, in the order of struct exports. */
static const char * const export_names[] = {
    "Initialize", "Shutdown", "Ping", "LiveHandles", "ModelLoad", "ModelGetInfo", "ModelFree",
    "RewardCreateCallback", "RewardCreateSpec", "RewardLoadHead", "RewardFree", "ValueLoadHead", "ValueFree",
    "RequestCreate", "RequestRun", "RequestCancel", "RequestOutputCount", "RequestOutputText", "RequestOutputTokens",
    "RequestOutputInfo", "RequestFree", "RequestOutputLogprobs", "RequestOutputTopLogprobs",
};
_Static_assert(sizeof(export_names) / sizeof(export_names[0]) * sizeof(void *) == sizeof(exports),
               "one name per export slot");

/* Per struct: sizeof, field count, each field's offset, in declaration order (AbiCheck compares the same list). */
#define FIELD(type, field) (uint32_t)offsetof(type, field)
static const uint32_t abi_layout[] = {
    sizeof(tilt_model_options), 3,
    FIELD(tilt_model_options, struct_size), FIELD(tilt_model_options, backend),
    FIELD(tilt_model_options, native_library),

    sizeof(tilt_model_info), 6,
    FIELD(tilt_model_info, struct_size), FIELD(tilt_model_info, vocab_size), FIELD(tilt_model_info, hidden_size),
    FIELD(tilt_model_info, context_size), FIELD(tilt_model_info, is_tabular), FIELD(tilt_model_info, reserved),

    sizeof(tilt_request_options), 32,
    FIELD(tilt_request_options, struct_size), FIELD(tilt_request_options, strategy),
    FIELD(tilt_request_options, samples), FIELD(tilt_request_options, max_tokens), FIELD(tilt_request_options, n),
    FIELD(tilt_request_options, k), FIELD(tilt_request_options, block_size), FIELD(tilt_request_options, selection),
    FIELD(tilt_request_options, tokenwise_top_k), FIELD(tilt_request_options, top_k),
    FIELD(tilt_request_options, temperature), FIELD(tilt_request_options, top_p),
    FIELD(tilt_request_options, threads), FIELD(tilt_request_options, request_id), FIELD(tilt_request_options, beta),
    FIELD(tilt_request_options, seed), FIELD(tilt_request_options, deadline_ms), FIELD(tilt_request_options, alpha),
    FIELD(tilt_request_options, every), FIELD(tilt_request_options, reserved),
    FIELD(tilt_request_options, stop), FIELD(tilt_request_options, stop_token_ids), FIELD(tilt_request_options, n_stop),
    FIELD(tilt_request_options, n_stop_token_ids), FIELD(tilt_request_options, include_stop), FIELD(tilt_request_options, reserved2),
    FIELD(tilt_request_options, lambda), FIELD(tilt_request_options, continuation), FIELD(tilt_request_options, logprobs),
    FIELD(tilt_request_options, top_logprobs), FIELD(tilt_request_options, beams), FIELD(tilt_request_options, reserved3),

    sizeof(tilt_event), 17,
    FIELD(tilt_event, struct_size), FIELD(tilt_event, kind), FIELD(tilt_event, sample), FIELD(tilt_event, step),
    FIELD(tilt_event, n_tokens), FIELD(tilt_event, n_scores), FIELD(tilt_event, chosen),
    FIELD(tilt_event, live_sequences), FIELD(tilt_event, text), FIELD(tilt_event, tokens), FIELD(tilt_event, scores),
    FIELD(tilt_event, text_len), FIELD(tilt_event, running_kl), FIELD(tilt_event, reward), FIELD(tilt_event, kl),
    FIELD(tilt_event, finish), FIELD(tilt_event, reserved),

    sizeof(tilt_output_info), 17,
    FIELD(tilt_output_info, struct_size), FIELD(tilt_output_info, index), FIELD(tilt_output_info, finish),
    FIELD(tilt_output_info, n_tokens), FIELD(tilt_output_info, kl_method), FIELD(tilt_output_info, kl_bound_method),
    FIELD(tilt_output_info, decode_calls), FIELD(tilt_output_info, has_reward), FIELD(tilt_output_info, reward),
    FIELD(tilt_output_info, logprob), FIELD(tilt_output_info, kl), FIELD(tilt_output_info, kl_bound),
    FIELD(tilt_output_info, win_rate), FIELD(tilt_output_info, tokens_evaluated), FIELD(tilt_output_info, prefill_ms),
    FIELD(tilt_output_info, first_text_ms), FIELD(tilt_output_info, total_ms),
};
#undef FIELD

static pthread_mutex_t g_init_lock = PTHREAD_MUTEX_INITIALIZER;
static exports g_exports;               /* bound once; the runtime cannot be unloaded, so neither can they */
static int g_bound;                     /* under g_init_lock */
static char g_managed_dir[PATH_MAX];    /* where the bound assembly came from */
static atomic_int g_ready;              /* 1 between a successful init and shutdown */

/* ---------------------------------------------------------------------------------------------------------- */
/* Hosting                                                                                                     */
/* ---------------------------------------------------------------------------------------------------------- */

static int file_exists(const char * path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* hostfxr reports problems through this writer (set per thread during init) instead of stderr. */
static _Thread_local char t_hostfxr_message[1024];
static void HOSTFXR_CALLTYPE hostfxr_error_writer(const char_t * message) {
    size_t used = strlen(t_hostfxr_message);
    if (used + 3 < sizeof t_hostfxr_message)
        snprintf(t_hostfxr_message + used, sizeof t_hostfxr_message - used, "%s%s", used ? "; " : "", message);
}

/* The managed folder: the caller's, else $TILT_INTEROP_DIR, else the folder this library was loaded from. */
static int resolve_managed_dir(const tilt_runtime_options * options, char * out, size_t size) {
    const char * dir = options->managed_dir;
    if (dir == NULL) dir = getenv("TILT_INTEROP_DIR");
    if (dir != NULL && dir[0] != '\0') {
        if (snprintf(out, size, "%s", dir) >= (int)size) return 0;
    } else {
        Dl_info info;
        if (dladdr((void *)&tilt_runtime_init, &info) == 0 || info.dli_fname == NULL) return 0;
        if (snprintf(out, size, "%s", info.dli_fname) >= (int)size) return 0;
        char * slash = strrchr(out, '/');
        if (slash == NULL) snprintf(out, size, ".");
        else *slash = '\0';
    }
    size_t n = strlen(out);
    while (n > 1 && out[n - 1] == '/') out[--n] = '\0';
    return 1;
}

static tilt_status bind_runtime(const tilt_runtime_options * options, const char * managed_dir) {
    char assembly[PATH_MAX], config[PATH_MAX];
    if (snprintf(assembly, sizeof assembly, "%s/%s", managed_dir, MANAGED_ASSEMBLY) >= (int)sizeof assembly ||
        snprintf(config, sizeof config, "%s/%s", managed_dir, MANAGED_RUNTIMECONFIG) >= (int)sizeof config) {
        set_errorf("managed_dir is too long: %s", managed_dir);
        return TILT_ERR_RUNTIME;
    }
    if (!file_exists(assembly) || !file_exists(config)) {
        set_errorf("%s or %s not found in %s (set tilt_runtime_options.managed_dir or TILT_INTEROP_DIR to the folder "
                   "Tilt.Interop was built or published to)", MANAGED_ASSEMBLY, MANAGED_RUNTIMECONFIG, managed_dir);
        return TILT_ERR_RUNTIME;
    }

    char hostfxr_path[PATH_MAX];
    size_t hostfxr_size = sizeof hostfxr_path;
    struct get_hostfxr_parameters params = { sizeof params, assembly, options->dotnet_root };
    int rc = get_hostfxr_path(hostfxr_path, &hostfxr_size, &params);
    if (rc != 0) {
        set_errorf("no .NET installation found (get_hostfxr_path: 0x%x); install the .NET 10 runtime, or set "
                   "DOTNET_ROOT or tilt_runtime_options.dotnet_root", (unsigned)rc);
        return TILT_ERR_RUNTIME;
    }
    /* RTLD_GLOBAL is not needed: everything is reached through the function pointers below. */
    void * lib = dlopen(hostfxr_path, RTLD_NOW | RTLD_LOCAL);
    if (lib == NULL) {
        set_errorf("cannot load %s: %s", hostfxr_path, dlerror());
        return TILT_ERR_RUNTIME;
    }
    hostfxr_initialize_for_runtime_config_fn init_fptr =
        (hostfxr_initialize_for_runtime_config_fn)dlsym(lib, "hostfxr_initialize_for_runtime_config");
    hostfxr_get_runtime_delegate_fn get_delegate_fptr =
        (hostfxr_get_runtime_delegate_fn)dlsym(lib, "hostfxr_get_runtime_delegate");
    hostfxr_close_fn close_fptr = (hostfxr_close_fn)dlsym(lib, "hostfxr_close");
    hostfxr_set_error_writer_fn writer_fptr = (hostfxr_set_error_writer_fn)dlsym(lib, "hostfxr_set_error_writer");
    if (init_fptr == NULL || get_delegate_fptr == NULL || close_fptr == NULL || writer_fptr == NULL) {
        set_errorf("%s lacks the hosting API (hostfxr_initialize_for_runtime_config); it is older than .NET 3.0",
                   hostfxr_path);
        return TILT_ERR_RUNTIME; /* the handle stays open: hostfxr is never unloaded */
    }

    t_hostfxr_message[0] = '\0';
    hostfxr_error_writer_fn previous_writer = writer_fptr(hostfxr_error_writer);
    struct hostfxr_initialize_parameters init_params = { sizeof init_params, NULL, options->dotnet_root };
    hostfxr_handle context = NULL;
    /* 0 = Success, 1 = Success_HostAlreadyInitialized, 2 = Success_DifferentRuntimeProperties: all usable. */
    rc = init_fptr(config, options->dotnet_root != NULL ? &init_params : NULL, &context);
    load_assembly_and_get_function_pointer_fn load = NULL;
    if (rc >= 0 && rc <= 2 && context != NULL)
        rc = get_delegate_fptr(context, hdt_load_assembly_and_get_function_pointer, (void **)&load);
    else if (rc >= 0)
        rc = -1;
    if (context != NULL) close_fptr(context);
    writer_fptr(previous_writer);
    if (rc != 0 || load == NULL) {
        set_errorf("cannot start the .NET runtime for %s (hostfxr status 0x%x)%s%s", config, (unsigned)rc,
                   t_hostfxr_message[0] ? ": " : "", t_hostfxr_message);
        return TILT_ERR_RUNTIME;
    }

    enum { EXPORT_COUNT = sizeof export_names / sizeof export_names[0] };
    void * slots[EXPORT_COUNT];
    for (size_t i = 0; i < EXPORT_COUNT; i++) {
        slots[i] = NULL;
        rc = load(assembly, MANAGED_TYPE, export_names[i], UNMANAGEDCALLERSONLY_METHOD, NULL, &slots[i]);
        if (rc != 0 || slots[i] == NULL) {
            set_errorf("%s has no export %s (status 0x%x): libtilt and Tilt.Interop.dll are from different builds",
                       assembly, export_names[i], (unsigned)rc);
            return TILT_ERR_RUNTIME;
        }
    }
    /* POSIX guarantees data and function pointers share a representation (dlsym relies on it). */
    memcpy(&g_exports, slots, sizeof g_exports);
    g_bound = 1;
    snprintf(g_managed_dir, sizeof g_managed_dir, "%s", managed_dir);
    return TILT_OK;
}

TILT_API tilt_status tilt_runtime_init(const tilt_runtime_options * options) {
    t_last_error[0] = '\0';
    tilt_runtime_options defaults = tilt_runtime_default_options();
    if (options == NULL) options = &defaults;
    if (options->struct_size != sizeof(tilt_runtime_options)) {
        set_errorf("tilt_runtime_options.struct_size is %u, expected %zu (use tilt_runtime_default_options())",
                   options->struct_size, sizeof(tilt_runtime_options));
        return TILT_ERR_INVALID_ARGUMENT;
    }

    pthread_mutex_lock(&g_init_lock);
    tilt_status status = TILT_OK;
    if (atomic_load(&g_ready)) goto done;

    char managed_dir[PATH_MAX];
    if (!resolve_managed_dir(options, managed_dir, sizeof managed_dir)) {
        set_error("cannot tell where Tilt.Interop.dll is: set tilt_runtime_options.managed_dir or TILT_INTEROP_DIR");
        status = TILT_ERR_RUNTIME;
        goto done;
    }
    if (g_bound) {
        /* After a shutdown: the runtime and its exports are still there; another folder cannot be loaded. */
        char requested[PATH_MAX], bound[PATH_MAX];
        if (realpath(managed_dir, requested) == NULL || realpath(g_managed_dir, bound) == NULL ||
            strcmp(requested, bound) != 0) {
            set_errorf("the engine was already loaded from %s; the .NET runtime cannot load it again from %s",
                       g_managed_dir, managed_dir);
            status = TILT_ERR_RUNTIME;
            goto done;
        }
    } else {
        status = bind_runtime(options, managed_dir);
        if (status != TILT_OK) goto done;
    }

    tilt_model_options model_defaults = tilt_model_default_options();
    tilt_request_options request_defaults = tilt_request_default_options();
    host_abi abi = {
        sizeof abi, TILT_API_VERSION, managed_set_error, abi_layout, sizeof abi_layout / sizeof abi_layout[0], 0,
        &model_defaults, &request_defaults,
    };
    status = g_exports.initialize(&abi);
    if (status == TILT_OK) atomic_store(&g_ready, 1);
    else if (t_last_error[0] == '\0') set_error("Tilt.Interop.dll refused the shim's ABI description");

done:
    pthread_mutex_unlock(&g_init_lock);
    return status;
}

TILT_API tilt_status tilt_runtime_shutdown(void) {
    t_last_error[0] = '\0';
    pthread_mutex_lock(&g_init_lock);
    tilt_status status = TILT_OK;
    if (atomic_load(&g_ready)) {
        status = g_exports.shutdown();
        if (status == TILT_OK) atomic_store(&g_ready, 0);
    }
    pthread_mutex_unlock(&g_init_lock);
    return status;
}

/* ---------------------------------------------------------------------------------------------------------- */
/* Forwarders                                                                                                  */
/* ---------------------------------------------------------------------------------------------------------- */

/* Every forwarded call starts by clearing the thread's last error and checking the runtime is up. */
#define ENTER()                                                                                                 \
    do {                                                                                                        \
        t_last_error[0] = '\0';                                                                                 \
        if (!atomic_load_explicit(&g_ready, memory_order_acquire)) {                                           \
            set_error("the engine is not initialized: call tilt_runtime_init first");                          \
            return TILT_ERR_NOT_INITIALIZED;                                                                    \
        }                                                                                                       \
    } while (0)

TILT_API tilt_status tilt_runtime_ping(void) {
    ENTER();
    return g_exports.ping();
}

TILT_API tilt_status tilt_runtime_live_handles(int64_t * out_count) {
    ENTER();
    return g_exports.live_handles(out_count);
}

TILT_API tilt_status tilt_model_load(const char * path, const tilt_model_options * options, tilt_model ** out_model) {
    ENTER();
    tilt_model_options defaults = tilt_model_default_options();
    return g_exports.model_load(path, options != NULL ? options : &defaults, out_model);
}

TILT_API tilt_status tilt_model_get_info(const tilt_model * model, tilt_model_info * out_info) {
    ENTER();
    return g_exports.model_get_info(model, out_info);
}

/* The *_free functions accept NULL even before init, as free(NULL) does. */
#define ENTER_FREE(handle)                                                                                      \
    do {                                                                                                        \
        t_last_error[0] = '\0';                                                                                 \
        if ((handle) == NULL) return TILT_OK;                                                                   \
    } while (0)

TILT_API tilt_status tilt_model_free(tilt_model * model) {
    ENTER_FREE(model);
    ENTER();
    return g_exports.model_free(model);
}

TILT_API tilt_status tilt_reward_create_callback(tilt_reward_fn fn, void * user_data, const char * name,
                                                 tilt_reward ** out_reward) {
    ENTER();
    return g_exports.reward_create_callback(fn, user_data, name, out_reward);
}

TILT_API tilt_status tilt_reward_create_spec(const tilt_model * model, const char * spec, tilt_reward ** out_reward) {
    ENTER();
    return g_exports.reward_create_spec(model, spec, out_reward);
}

TILT_API tilt_status tilt_reward_load_head(const tilt_model * model, const char * path, tilt_reward ** out_reward) {
    ENTER();
    return g_exports.reward_load_head(model, path, out_reward);
}

TILT_API tilt_status tilt_reward_free(tilt_reward * reward) {
    ENTER_FREE(reward);
    ENTER();
    return g_exports.reward_free(reward);
}

TILT_API tilt_status tilt_value_load_head(const tilt_model * model, const char * path, tilt_value ** out_value) {
    ENTER();
    return g_exports.value_load_head(model, path, out_value);
}

TILT_API tilt_status tilt_value_free(tilt_value * value) {
    ENTER_FREE(value);
    ENTER();
    return g_exports.value_free(value);
}

TILT_API tilt_status tilt_request_create(tilt_model * model, const char * prompt, const tilt_request_options * options,
                                         const tilt_reward * reward, const tilt_value * value,
                                         tilt_request ** out_request) {
    ENTER();
    tilt_request_options defaults = tilt_request_default_options();
    return g_exports.request_create(model, prompt, options != NULL ? options : &defaults, reward, value, out_request);
}

TILT_API tilt_status tilt_request_run(tilt_request * request, tilt_stream_fn on_event, void * user_data) {
    ENTER();
    tilt_status status = g_exports.request_run(request, on_event, user_data);
    /* Calls made from the callbacks on this thread may have left their own errors behind. */
    if (status == TILT_OK) t_last_error[0] = '\0';
    return status;
}

TILT_API tilt_status tilt_request_cancel(tilt_request * request) {
    ENTER();
    return g_exports.request_cancel(request);
}

TILT_API tilt_status tilt_request_output_count(const tilt_request * request, int32_t * out_count) {
    ENTER();
    return g_exports.request_output_count(request, out_count);
}

TILT_API tilt_status tilt_request_output_text(const tilt_request * request, int32_t index, char * buf, size_t buf_size,
                                              size_t * out_size) {
    ENTER();
    return g_exports.request_output_text(request, index, buf, buf_size, out_size);
}

TILT_API tilt_status tilt_request_output_tokens(const tilt_request * request, int32_t index, int32_t * buf,
                                                size_t buf_count, size_t * out_count) {
    ENTER();
    return g_exports.request_output_tokens(request, index, buf, buf_count, out_count);
}

TILT_API tilt_status tilt_request_output_info(const tilt_request * request, int32_t index, tilt_output_info * out_info) {
    ENTER();
    return g_exports.request_output_info(request, index, out_info);
}

TILT_API tilt_status tilt_request_output_logprobs(const tilt_request * request, int32_t index, double * buf,
                                                  size_t buf_count, size_t * out_count) {
    ENTER();
    return g_exports.request_output_logprobs(request, index, buf, buf_count, out_count);
}

TILT_API tilt_status tilt_request_output_top_logprobs(const tilt_request * request, int32_t index, int32_t * tokens,
                                                      double * logprobs, size_t buf_count, size_t * out_count) {
    ENTER();
    return g_exports.request_output_top_logprobs(request, index, tokens, logprobs, buf_count, out_count);
}

TILT_API tilt_status tilt_request_free(tilt_request * request) {
    ENTER_FREE(request);
    ENTER();
    return g_exports.request_free(request);
}
