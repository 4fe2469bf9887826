/*
 * tilt.h - the C API of the Tilt inference-time alignment engine.
 *
 * The engine is .NET code; libtilt hosts the .NET runtime in the calling process (nethost/hostfxr; NativeAOT
 * cannot host ILGPU, which emits code at run time) and forwards every call to [UnmanagedCallersOnly] exports of
 * Tilt.Interop.dll. No managed exception crosses this boundary: every failure is a status code and a message.
 *
 * Conventions
 *   - Every function returns a tilt_status (except the few pure queries that say otherwise). TILT_OK is 0 and
 *     every error is negative. After a failure, tilt_last_error() describes it, and every out-parameter is left
 *     unchanged unless the declaration says otherwise.
 *   - Handles are opaque. They are ids checked against a table, never dereferenced: a NULL, freed, never issued
 *     or wrong-kind handle gives TILT_ERR_INVALID_HANDLE, not a crash. Every handle has a NULL-safe *_free.
 *   - Strings are UTF-8 and NUL-terminated. A string the engine gives to a callback is valid only during that
 *     call. Functions that fill a caller's buffer always store the size they need in *out_size and return
 *     TILT_ERR_BUFFER_TOO_SMALL (leaving the buffer untouched) when buf_size is smaller; buf may be NULL when
 *     buf_size is 0, which makes a size query.
 *   - Any function may also return TILT_ERR_INTERNAL: a bug in the engine, never the caller's input; the
 *     message names the exception. The lists at each declaration give every other status it returns.
 *   - Structs that cross the boundary start with struct_size, set by the *_default_options() functions (or by
 *     the caller to sizeof(the struct)); a different value gives TILT_ERR_INVALID_ARGUMENT.
 *
 * Threads
 *   - tilt_api_version, tilt_status_name and the *_default_options functions are pure and may be called at any
 *     time, from any thread, before tilt_runtime_init.
 *   - tilt_last_error is per thread.
 *   - After tilt_runtime_init, every other call may be made from any thread, concurrently, with these limits:
 *       * runs on one model from several threads share batches: the model's engine decodes every running
 *         request's sequences in one llama_decode per step (continuous batching), each request's outputs the same
 *         as when it runs alone (noise is keyed by its own seed). A request wider than the shared engine (more
 *         than 64 parallel sequences, more than 512 tokens per sequence, or asking for its own thread count) runs
 *         on a context of its own instead; runs on different models may overlap;
 *       * tilt_request_cancel may be called from any thread at any time, the running thread included;
 *       * a request's results may not be read while it runs (TILT_ERR_BAD_STATE);
 *       * tilt_runtime_init and tilt_runtime_shutdown must not race with any other call.
 *   - Callbacks (reward, stream) run on the thread that called tilt_request_run, one at a time (the engine hands
 *     each reward call to that thread and waits for it, so a slow reward callback slows every request sharing the
 *     model's batches). From inside a
 *     callback you may call tilt_request_cancel and any query; tilt_request_run on the same model gives
 *     TILT_ERR_BAD_STATE (it would deadlock).
 *   - A callback must return normally: no longjmp or C++ exception may unwind through the engine.
 */
#ifndef TILT_H
#define TILT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32)
#  if defined(TILT_BUILD)
#    define TILT_API __declspec(dllexport)
#  else
#    define TILT_API __declspec(dllimport)
#  endif
#else
#  define TILT_API __attribute__((visibility("default")))
#endif

/* The API version: the major changes on any incompatible change, the minor when functions are added. */
#define TILT_API_VERSION_MAJOR 1
#define TILT_API_VERSION_MINOR 4
#define TILT_API_VERSION ((TILT_API_VERSION_MAJOR << 16) | TILT_API_VERSION_MINOR)

/* ------------------------------------------------------------------------------------------------------------ */
/* Status codes                                                                                                  */
/* ------------------------------------------------------------------------------------------------------------ */

typedef int32_t tilt_status;

#define TILT_OK                     0   /* success */
#define TILT_ERR_INVALID_ARGUMENT  (-1) /* NULL pointer, value out of range, invalid UTF-8, wrong struct_size */
#define TILT_ERR_INVALID_HANDLE    (-2) /* NULL, freed, never issued or wrong-kind handle */
#define TILT_ERR_BUFFER_TOO_SMALL  (-3) /* the caller's buffer is too small; *out_size holds the size needed */
#define TILT_ERR_NOT_INITIALIZED   (-4) /* tilt_runtime_init has not succeeded, or tilt_runtime_shutdown ran */
#define TILT_ERR_RUNTIME           (-5) /* hosting .NET failed: no runtime, Tilt.Interop.dll missing, ABI mismatch */
#define TILT_ERR_MODEL_LOAD        (-6) /* a model or head file is missing, unreadable, malformed or for another model */
#define TILT_ERR_ENGINE            (-7) /* the engine refused the input: bad reward spec, prompt longer than the context */
#define TILT_ERR_CALLBACK          (-8) /* a host reward callback returned non-zero or a non-finite reward */
#define TILT_ERR_CANCELLED         (-9) /* tilt_request_cancel was called, or a stream callback returned non-zero */
#define TILT_ERR_BAD_STATE        (-10) /* the call does not fit the object's state (running, already run, ...) */
#define TILT_ERR_UNSUPPORTED      (-11) /* the machine cannot do it (e.g. TILT_BACKEND_CUDA without a CUDA device) */
#define TILT_ERR_INTERNAL         (-12) /* a bug in the engine; the message names the exception */
#define TILT_ERR_BUSY             (-13) /* the model's engine is full (its queue of waiting requests) or shutting down: retry later */

/* ------------------------------------------------------------------------------------------------------------ */
/* Handles (opaque; ownership stated at each function)                                                          */
/* ------------------------------------------------------------------------------------------------------------ */

typedef struct tilt_model tilt_model;     /* a loaded base model and its step kernels */
typedef struct tilt_reward tilt_reward;   /* a reward r(x, y): a spec, a trained head or a host callback */
typedef struct tilt_value tilt_value;     /* a value V(x, y^t) for controlled decoding: a trained head */
typedef struct tilt_request tilt_request; /* one request: its options, its run and its outputs */

/* ------------------------------------------------------------------------------------------------------------ */
/* Version, errors, runtime                                                                                     */
/* ------------------------------------------------------------------------------------------------------------ */

/* TILT_API_VERSION of the library (not of the header you compiled against). Pure; never fails. */
TILT_API uint32_t tilt_api_version(void);

/* The message of the last failed call on this thread, or "" when the last call succeeded. Never NULL. Owned by
 * the library; valid until the next tilt_ call on this thread. */
TILT_API const char * tilt_last_error(void);

/* A static name for a status ("TILT_ERR_CANCELLED"), or "TILT_UNKNOWN_STATUS". Pure; never NULL. */
TILT_API const char * tilt_status_name(tilt_status status);

typedef struct tilt_runtime_options {
    uint32_t struct_size;      /* sizeof(tilt_runtime_options) */
    uint32_t reserved;         /* 0 */
    /* Folder holding Tilt.Interop.dll, Tilt.Interop.runtimeconfig.json and its dependencies. NULL: the
     * environment variable TILT_INTEROP_DIR, else the folder libtilt itself was loaded from. Copied. */
    const char * managed_dir;
    /* The .NET installation to use. NULL: nethost's search ($DOTNET_ROOT, then the global install). Copied. */
    const char * dotnet_root;
} tilt_runtime_options;

/* Defaults: every path NULL. Pure. */
TILT_API tilt_runtime_options tilt_runtime_default_options(void);

/* Starts the .NET runtime and binds the engine. options may be NULL (defaults). Calling it again after success
 * is TILT_OK and does nothing; after tilt_runtime_shutdown it enables the API again (the .NET runtime cannot be
 * unloaded from a process, so it stays loaded).
 * Returns TILT_OK; TILT_ERR_INVALID_ARGUMENT (struct_size); TILT_ERR_RUNTIME (no .NET 10 runtime, the managed
 * folder or its files missing, an ABI or version mismatch between libtilt and Tilt.Interop.dll). After a failure
 * the API stays uninitialized and init may be retried with other options. */
TILT_API tilt_status tilt_runtime_init(const tilt_runtime_options * options);

/* Frees every live handle (models, rewards, values, requests) and disables the API until the next init; handles
 * issued before are invalid afterwards. Returns TILT_OK (also when not initialized); TILT_ERR_BAD_STATE when a
 * request is running (nothing is freed then: cancel it and wait for its run to return). */
TILT_API tilt_status tilt_runtime_shutdown(void);

/* A round trip into the managed engine that does nothing: for measuring the boundary's cost and checking that
 * the runtime answers. Returns TILT_OK; TILT_ERR_NOT_INITIALIZED. */
TILT_API tilt_status tilt_runtime_ping(void);

/* Number of live handles of every kind (a leak check for hosts and tests). Returns TILT_OK;
 * TILT_ERR_INVALID_ARGUMENT (out_count NULL); TILT_ERR_NOT_INITIALIZED. */
TILT_API tilt_status tilt_runtime_live_handles(int64_t * out_count);

/* ------------------------------------------------------------------------------------------------------------ */
/* Models                                                                                                       */
/* ------------------------------------------------------------------------------------------------------------ */

typedef enum tilt_backend {
    TILT_BACKEND_AUTO = 0, /* the SIMD CPU kernels, also when a CUDA device exists (logits arrive in host
                              memory, where they measured faster); TILT_BACKEND_CUDA forces the GPU */
    TILT_BACKEND_CPU  = 1, /* the SIMD CPU kernels */
    TILT_BACKEND_CUDA = 2, /* ILGPU kernels on the first CUDA device; TILT_ERR_UNSUPPORTED when there is none */
} tilt_backend;

typedef struct tilt_model_options {
    uint32_t struct_size;         /* sizeof(tilt_model_options) */
    int32_t backend;              /* tilt_backend of the step kernels. Defaults to TILT_BACKEND_AUTO. */
    /* Path of your own llama.cpp library (e.g. a CUDA build of the same commit) instead of the bundled CPU one.
     * Process-wide: it must be given before the first GGUF model loads and cannot change afterwards. NULL keeps
     * the bundled library. Copied. */
    const char * native_library;
} tilt_model_options;

/* Defaults: TILT_BACKEND_AUTO, the bundled llama.cpp library. Pure. */
TILT_API tilt_model_options tilt_model_default_options(void);

/* Loads a GGUF file, or a tabular model when the file is JSON. path NULL: the default model ($TILT_MODEL, else
 * ../shared/models/stories260K.gguf beside the project, searched up from the working directory). options may be
 * NULL (defaults). On TILT_OK, *out_model is a new handle the caller owns: free it with tilt_model_free.
 * Returns TILT_OK; TILT_ERR_INVALID_ARGUMENT (out_model NULL, bad backend, struct_size, invalid UTF-8);
 * TILT_ERR_MODEL_LOAD (file missing, malformed, not a regular file (a folder, FIFO or device, refused unopened), or a
 * GGUF whose hyper-parameters llama.cpp cannot load (more than 512 layers, ...); native library missing, not a llama.cpp library of the
 * version the engine needs (checked before it is bound, so a later call may name another or NULL), or another
 * one already bound);
 * TILT_ERR_UNSUPPORTED (TILT_BACKEND_CUDA without a CUDA device); TILT_ERR_NOT_INITIALIZED. */
TILT_API tilt_status tilt_model_load(const char * path, const tilt_model_options * options, tilt_model ** out_model);

typedef struct tilt_model_info {
    uint32_t struct_size;  /* sizeof(tilt_model_info), set by the caller */
    int32_t vocab_size;    /* token ids 0..vocab_size-1 */
    int32_t hidden_size;   /* width of the final hidden state (what heads read) */
    int32_t context_size;  /* context length the model was trained with */
    int32_t is_tabular;    /* 1 for a tabular JSON model, 0 for GGUF */
    int32_t reserved;
} tilt_model_info;

/* Fills *out_info (whose struct_size the caller sets). Returns TILT_OK; TILT_ERR_INVALID_HANDLE;
 * TILT_ERR_INVALID_ARGUMENT (out_info NULL or struct_size wrong); TILT_ERR_NOT_INITIALIZED. */
TILT_API tilt_status tilt_model_get_info(const tilt_model * model, tilt_model_info * out_info);

/* Releases the caller's handle. The model itself is disposed when the last request created on it is freed too,
 * so freeing a model while one of its requests runs is safe. NULL: TILT_OK, nothing happens.
 * Returns TILT_OK; TILT_ERR_INVALID_HANDLE (already freed or not a model: nothing happens). */
TILT_API tilt_status tilt_model_free(tilt_model * model);

/* ------------------------------------------------------------------------------------------------------------ */
/* Rewards and values                                                                                           */
/* ------------------------------------------------------------------------------------------------------------ */

/* A host reward. Called by the engine on the thread running the request, for each candidate text: finished
 * texts (best-of-n candidates, outputs) and, when the reward also serves as the value of controlled decoding
 * (no tilt_value given), unfinished prefixes with finished = 0.
 *   prompt, text: UTF-8, NUL-terminated, valid only during the call; text is the continuation without the prompt.
 *   finished:     1 when a stop token ended the text, 0 when it was cut at the length limit or is a prefix.
 *   out_reward:   store the reward here; it is NaN on entry, and a value left NaN or non-finite is an error.
 * Return 0 on success; any other value fails the request with TILT_ERR_CALLBACK (the message quotes it). */
typedef int32_t (*tilt_reward_fn)(void * user_data, const char * prompt, const char * text, int32_t finished,
                                  double * out_reward);

/* A reward computed by the host. fn must not be NULL. user_data is passed back untouched and must stay valid
 * while any request created with this reward can still run (the library never frees it). name (may be NULL:
 * "callback") names the reward in messages; copied. On TILT_OK, *out_reward is a new handle the caller owns.
 * Returns TILT_OK; TILT_ERR_INVALID_ARGUMENT (fn or out_reward NULL, name not UTF-8); TILT_ERR_NOT_INITIALIZED. */
TILT_API tilt_status tilt_reward_create_callback(tilt_reward_fn fn, void * user_data, const char * name,
                                                 tilt_reward ** out_reward);

/* A reward from a spec, as `tilt align --reward` takes it: length:40, lexicon:sentiment, regex:PATTERN,
 * head:FILE, 0.7*lexicon:positive+0.3*length:40, min(A;B), ... model may be NULL unless the spec has a head:
 * term (a head reads the hidden states of the model it was trained on). On TILT_OK, *out_reward is a new handle
 * the caller owns. Returns TILT_OK; TILT_ERR_INVALID_ARGUMENT (spec or out_reward NULL, invalid UTF-8);
 * TILT_ERR_INVALID_HANDLE (model not NULL and not a live model); TILT_ERR_ENGINE (the spec does not parse, or a
 * file it names cannot be read; the message quotes the offending part); TILT_ERR_NOT_INITIALIZED. */
TILT_API tilt_status tilt_reward_create_spec(const tilt_model * model, const char * spec, tilt_reward ** out_reward);

/* A trained reward head (tilt-head/1 file) over model's final hidden states. On TILT_OK, *out_reward is a new
 * handle the caller owns. Returns TILT_OK; TILT_ERR_INVALID_ARGUMENT; TILT_ERR_INVALID_HANDLE (model);
 * TILT_ERR_MODEL_LOAD (file missing or malformed, or trained on another model); TILT_ERR_NOT_INITIALIZED. */
TILT_API tilt_status tilt_reward_load_head(const tilt_model * model, const char * path, tilt_reward ** out_reward);

/* Releases the handle; requests created with it keep what they need. NULL: TILT_OK. Returns TILT_OK;
 * TILT_ERR_INVALID_HANDLE (already freed or not a reward: nothing happens). */
TILT_API tilt_status tilt_reward_free(tilt_reward * reward);

/* A trained value head (tilt-head/1 file) for token-wise and blockwise CD and beam search. On TILT_OK, *out_value
 * is a new handle the caller owns. Returns TILT_OK; TILT_ERR_INVALID_ARGUMENT; TILT_ERR_INVALID_HANDLE (model);
 * TILT_ERR_MODEL_LOAD (file missing or malformed, or trained on another model); TILT_ERR_NOT_INITIALIZED. */
TILT_API tilt_status tilt_value_load_head(const tilt_model * model, const char * path, tilt_value ** out_value);

/* Releases the handle; requests created with it keep what they need. NULL: TILT_OK. Returns TILT_OK;
 * TILT_ERR_INVALID_HANDLE (already freed or not a value: nothing happens). */
TILT_API tilt_status tilt_value_free(tilt_value * value);

/* ------------------------------------------------------------------------------------------------------------ */
/* Requests                                                                                                     */
/* ------------------------------------------------------------------------------------------------------------ */

typedef enum tilt_strategy {
    TILT_STRATEGY_SAMPLE    = 0, /* plain sampling from the base model: `samples` continuations in one batch */
    TILT_STRATEGY_BEST_OF_N = 1, /* n candidates in one batch, the highest reward wins [M4] */
    TILT_STRATEGY_TOKENWISE = 2, /* token-wise controlled decoding over the top-k of p [M14] */
    TILT_STRATEGY_BLOCKWISE = 3, /* blockwise controlled decoding: K blocks of M tokens, keep the best [M18] */
    TILT_STRATEGY_REJECTION = 4, /* early rejection: n candidates, the weakest alpha of the unfinished stopped every
                                    `every` tokens (their sequences go to other requests), best survivor wins */
    TILT_STRATEGY_SOFT_BEST_OF_N = 5, /* soft best-of-n: n candidates, the winner drawn with probability proportional
                                         to exp(r / lambda) [M27] (API 1.3) */
    TILT_STRATEGY_SCORE = 6,          /* score a given text: `continuation` is teacher-forced after the prompt (nothing
                                         is generated); one output whose tokens are the continuation's, whose logprob
                                         is their sum, with per-token log p and top_logprobs alternatives (API 1.3) */
    TILT_STRATEGY_BEAM = 7,           /* reward-guided beam search over blocks [M29]: k candidate blocks of block_size
                                         tokens per step over all beams, the best `beams` kept; the kept beam of highest
                                         reward wins. beams = 1 is blockwise CD with argmax selection (API 1.4) */
} tilt_strategy;

typedef enum tilt_selection {
    TILT_SELECTION_ARGMAX = 0, /* blockwise keeps the block of highest value (ties uniformly at random) */
    TILT_SELECTION_SAMPLE = 1, /* blockwise samples a block with probability proportional to exp(V / beta) */
} tilt_selection;

typedef struct tilt_request_options {
    uint32_t struct_size;     /* sizeof(tilt_request_options) */
    int32_t strategy;         /* tilt_strategy. Defaults to TILT_STRATEGY_BLOCKWISE. */
    int32_t samples;          /* independent outputs (aligned: 1..100000, one after another; SAMPLE: 1..256 in one
                                 batch). Defaults to 1. */
    int32_t max_tokens;       /* generated tokens per output at most, stop token included (>= 1). Defaults to 128. */
    int32_t n;                /* best-of-n: candidates per output (1..256). Defaults to 4. */
    int32_t k;                /* blockwise, beam: candidate blocks per step, K (1..256). Defaults to 8. */
    int32_t block_size;       /* blockwise, beam: tokens per block, M (>= 1). Defaults to 8. */
    int32_t selection;        /* blockwise: tilt_selection. Defaults to TILT_SELECTION_ARGMAX. */
    int32_t tokenwise_top_k;  /* token-wise: candidate tokens per step, the top-k of p; 0 = whole vocabulary.
                                 Defaults to 16. */
    int32_t top_k;            /* proposals: keep the top_k most likely tokens; 0 = off. Defaults to 0. */
    float temperature;        /* proposals: temperature, 0 (greedy) or finite >= 1e-4. Defaults to 1. */
    float top_p;              /* proposals: nucleus mass in (0, 1]; 1 = off. Defaults to 1. */
    int32_t threads;          /* CPU threads for llama.cpp, 0..logical CPUs; 0 = the model engine's (one per physical core unless the model was opened with others). A request asking for other threads than its model's engine runs on an engine (llama context) of its own. Defaults to 0. */
    uint32_t request_id;      /* mixed into the RNG key with the seed. Defaults to 0. */
    double beta;              /* tilt strength of token-wise CD and of blockwise SAMPLE selection (finite,
                                 >= 1e-30). Defaults to 1. */
    uint64_t seed;            /* RNG seed: the same seed gives the same outputs. Defaults to 0. */
    int64_t deadline_ms;      /* aligned strategies: wall-clock budget of the whole request; the output in
                                 progress is returned as it stands, finish = TILT_FINISH_DEADLINE; reward
                                 scoring counts against it too. 0 = none.
                                 Must be 0 for TILT_STRATEGY_SAMPLE. Defaults to 0. */
    double alpha;             /* rejection: fraction of the unfinished candidates stopped at each decision, in [0, 1);
                                 0 = best-of-n. Defaults to 0.5. (API 1.1) */
    int32_t every;            /* rejection: generated tokens between decisions (>= 1, < max_tokens). Defaults to 8. */
    int32_t reserved;         /* must be 0 */
    /* API 1.2: stop sequences. A caller compiled against 1.1 passes the 1.1 struct_size; these fields then take their
       defaults. Every strategy honours them: a sequence ends the moment its text contains a stop string (matched
       across token boundaries) or it samples a stop token id, exactly like EOS, with finish = TILT_FINISH_STOP;
       best-of-n/rejection candidates end at their own stop, token-wise/blockwise CD end the output when the accepted
       text hits one. TEXT events never carry text past a stop. Strings and ids are copied by tilt_request_create. */
    const char * const * stop;      /* n_stop UTF-8 stop strings (1..256 bytes each); may be NULL when n_stop is 0.
                                       Defaults to NULL. (API 1.2) */
    const int32_t * stop_token_ids; /* n_stop_token_ids token ids (0..vocab-1) that end a sequence like EOS; may be
                                       NULL when n_stop_token_ids is 0. Defaults to NULL. (API 1.2) */
    int32_t n_stop;                 /* stop strings, 0..16. Defaults to 0. (API 1.2) */
    int32_t n_stop_token_ids;       /* stop token ids, 0..64. Defaults to 0. (API 1.2) */
    int32_t include_stop;           /* non-zero: the output keeps the stop string (or the stop token's text) at its
                                       end; 0: the text ends just before it (OpenAI's behaviour). Defaults to 0. (API 1.2) */
    int32_t reserved2;              /* must be 0 (API 1.2) */
    /* API 1.3: soft best-of-n. A caller compiled against 1.1 or 1.2 passes its struct_size; lambda then takes its
       default. */
    double lambda;                  /* soft best-of-n: the selection temperature, finite and >= 1e-30 (small: best-of-n,
                                       large: the base model). Defaults to 1.0. (API 1.3) */
    const char * continuation;      /* TILT_STRATEGY_SCORE: the UTF-8 text to score after the prompt (copied by
                                       tilt_request_create); must be NULL for the other strategies. Defaults to NULL. */
    int32_t logprobs;               /* non-zero: every output token's log p(token | prefix) at T = 1 is kept
                                       (tilt_request_output_logprobs). Always on for TILT_STRATEGY_SCORE. Defaults to 0. */
    int32_t top_logprobs;           /* 0..20: the most likely alternatives of each output token's row, with their
                                       log p (tilt_request_output_top_logprobs); > 0 implies logprobs. Defaults to 0. */
    /* API 1.4: beam search. A caller compiled against 1.1, 1.2 or 1.3 passes its struct_size; beams then takes its
       default. */
    int32_t beams;                  /* beam search: beams kept after every step, B (1..k; k and block_size are read as
                                       for blockwise). Defaults to 2. (API 1.4) */
    int32_t reserved3;              /* must be 0 (API 1.4) */
} tilt_request_options;

/* Defaults: as documented at each field. Pure. */
TILT_API tilt_request_options tilt_request_default_options(void);

/* Creates a request on model; it does not run yet. prompt: UTF-8 (checked). options may be NULL (defaults);
 * every field is validated here. reward is required by the aligned strategies and optional for
 * TILT_STRATEGY_SAMPLE (then each sample is scored by it). value may be NULL: token-wise and blockwise CD and beam
 * search then use the reward applied to the unfinished prefix; best-of-n and sampling ignore it. The request keeps the model,
 * reward and value alive: their handles may be freed at once. On TILT_OK, *out_request is a new handle the
 * caller owns: free it with tilt_request_free.
 * Returns TILT_OK; TILT_ERR_INVALID_ARGUMENT (a NULL pointer, invalid UTF-8, an option out of range, a missing
 * reward, a head trained on another model; the message names the field); TILT_ERR_INVALID_HANDLE (model, reward
 * or value); TILT_ERR_NOT_INITIALIZED. */
TILT_API tilt_status tilt_request_create(tilt_model * model, const char * prompt, const tilt_request_options * options,
                                         const tilt_reward * reward, const tilt_value * value,
                                         tilt_request ** out_request);

typedef enum tilt_event_kind {
    TILT_EVENT_TEXT              = 1, /* text was accepted: a token (sample, token-wise), a block, a winner */
    TILT_EVENT_CANDIDATES_SCORED = 2, /* candidates were scored at a decision point */
    TILT_EVENT_STEP              = 3, /* a best-of-n decode step finished (progress) */
    TILT_EVENT_OUTPUT_DONE       = 4, /* an output is complete; its results can be read after the run */
} tilt_event_kind;

typedef enum tilt_finish {
    TILT_FINISH_EOS      = 0, /* a stop token ended the text */
    TILT_FINISH_LENGTH   = 1, /* max_tokens was reached */
    TILT_FINISH_DEADLINE = 2, /* the deadline passed: a partial output */
    TILT_FINISH_STOP     = 3, /* a stop string or stop token id of the request ended the text (API 1.2) */
} tilt_finish;

/* One streamed event. Every pointer in it is valid only during the callback: copy what you keep. */
typedef struct tilt_event {
    uint32_t struct_size;     /* sizeof(tilt_event) */
    int32_t kind;             /* tilt_event_kind */
    int32_t sample;           /* index of the output it belongs to */
    int32_t step;             /* SCORED: token position (token-wise) or block number (blockwise), 0 for best-of-n;
                                 STEP: decode step; else -1 */
    int32_t n_tokens;         /* TEXT: entries in tokens; else 0 */
    int32_t n_scores;         /* SCORED: entries in scores; else 0 */
    int32_t chosen;           /* SCORED: index of the accepted candidate; else -1 */
    int32_t live_sequences;   /* STEP: candidates still decoding; else 0 */
    const char * text;        /* TEXT: the UTF-8 text the tokens complete (may be "" inside a multi-byte
                                 character); else "". Never NULL. */
    const int32_t * tokens;   /* TEXT: the accepted token ids; else NULL */
    const double * scores;    /* SCORED: value or reward of each candidate; else NULL */
    size_t text_len;          /* bytes in text, the NUL excluded */
    double running_kl;        /* TEXT: KL of the output so far by the strategy's method (0 for SAMPLE) */
    double reward;            /* OUTPUT_DONE: reward of the output (NaN when SAMPLE has no reward) */
    double kl;                /* OUTPUT_DONE: KL of the output (0 for SAMPLE) */
    int32_t finish;           /* OUTPUT_DONE: tilt_finish */
    int32_t reserved;
} tilt_event;

/* Receives every event of a run. Return 0 to go on; any other value cancels the run, which then returns
 * TILT_ERR_CANCELLED. */
typedef int32_t (*tilt_stream_fn)(void * user_data, const tilt_event * event);

/* Runs the request on the calling thread and returns when it is done. on_event may be NULL (no streaming);
 * user_data is passed to it untouched. A request runs once.
 * Returns TILT_OK (also when the deadline cut the output: see finish); TILT_ERR_CANCELLED (tilt_request_cancel
 * or on_event returned non-zero: the outputs completed before stay readable); TILT_ERR_CALLBACK (a reward
 * callback failed or gave a non-finite reward); TILT_ERR_ENGINE (the prompt does not fit the context, a reward
 * file failed, the KV cache would not fit the available memory); TILT_ERR_BUSY (the model's engine already has 256
 * requests waiting; nothing ran, so the request may be created again and retried later); TILT_ERR_INVALID_ARGUMENT
 * (a value the step kernels refuse that only the run can see, e.g. logits / temperature overflowing float: the
 * message names it); TILT_ERR_BAD_STATE (the request is running or ran already, or this thread is inside a callback
 * of a run on the same model); TILT_ERR_INVALID_HANDLE; TILT_ERR_NOT_INITIALIZED. After any other failure the
 * request has run: its completed outputs are readable, and it cannot run again. */
TILT_API tilt_status tilt_request_run(tilt_request * request, tilt_stream_fn on_event, void * user_data);

/* Asks a request to stop, from any thread: a running request stops at its next step (token or block) and its
 * run returns TILT_ERR_CANCELLED; one not yet run returns TILT_ERR_CANCELLED at once when run; one that has
 * finished is unaffected. Returns TILT_OK; TILT_ERR_INVALID_HANDLE; TILT_ERR_NOT_INITIALIZED. */
TILT_API tilt_status tilt_request_cancel(tilt_request * request);

/* Number of completed outputs after the run (samples, unless cancelled or cut by the deadline). Returns TILT_OK;
 * TILT_ERR_INVALID_ARGUMENT (out_count NULL); TILT_ERR_INVALID_HANDLE; TILT_ERR_BAD_STATE (not run yet, or
 * running); TILT_ERR_NOT_INITIALIZED. */
TILT_API tilt_status tilt_request_output_count(const tilt_request * request, int32_t * out_count);

/* Copies output `index`'s text (UTF-8, the continuation without the prompt, NUL-terminated) into buf.
 * *out_size receives the bytes needed, the NUL included, on TILT_OK and on TILT_ERR_BUFFER_TOO_SMALL.
 * Returns TILT_OK; TILT_ERR_BUFFER_TOO_SMALL (buf untouched); TILT_ERR_INVALID_ARGUMENT (out_size NULL, buf NULL
 * with buf_size > 0, index out of range); TILT_ERR_INVALID_HANDLE; TILT_ERR_BAD_STATE; TILT_ERR_NOT_INITIALIZED. */
TILT_API tilt_status tilt_request_output_text(const tilt_request * request, int32_t index, char * buf, size_t buf_size,
                                              size_t * out_size);

/* Copies output `index`'s token ids (the stop token included when it ended) into buf, buf_count entries at most.
 * *out_count receives the number of tokens on TILT_OK and on TILT_ERR_BUFFER_TOO_SMALL. Statuses as
 * tilt_request_output_text. */
TILT_API tilt_status tilt_request_output_tokens(const tilt_request * request, int32_t index, int32_t * buf,
                                                size_t buf_count, size_t * out_count);

typedef enum tilt_kl_method {
    TILT_KL_NONE           = 0, /* no KL (plain sampling) */
    TILT_KL_BON_BOUND      = 1, /* log n - (n-1)/n [M7] */
    TILT_KL_BON_ESTIMATE   = 2, /* KLhat(eps), eps = p(winner | x) [M9] */
    TILT_KL_STEP_DRIFT_SUM = 3, /* sum of the exact per-step drift [M15] */
    TILT_KL_BLOCK_BOUND    = 4, /* sum of the per-block best-of-K bounds [M19] */
    TILT_KL_BLOCK_ESTIMATE = 5, /* sum of the per-block estimates [M19] */
    TILT_KL_SOFT_BON_ESTIMATE = 6, /* soft best-of-n: log n - H(selection), an upper estimate [M27] (API 1.3) */
} tilt_kl_method;

typedef struct tilt_output_info {
    uint32_t struct_size;     /* sizeof(tilt_output_info), set by the caller */
    int32_t index;            /* which output */
    int32_t finish;           /* tilt_finish */
    int32_t n_tokens;         /* tokens generated, the stop token included */
    int32_t kl_method;        /* tilt_kl_method of kl */
    int32_t kl_bound_method;  /* tilt_kl_method of kl_bound; TILT_KL_NONE when there is no bound */
    int32_t decode_calls;     /* batched decode calls after the prefill */
    int32_t has_reward;       /* 1 when reward is set (always, except SAMPLE without a reward) */
    double reward;            /* r(x, y) under the request's reward; NaN when has_reward is 0 */
    double logprob;           /* log p(y | x) under the base model (T = 1, whole vocabulary) */
    double kl;                /* KL(pi || p) of the strategy, by kl_method */
    double kl_bound;          /* an upper bound where the strategy has one; NaN otherwise */
    double win_rate;          /* best-of-n: fraction of the other candidates the winner beats; NaN otherwise */
    int64_t tokens_evaluated; /* tokens the model decoded for this output, prefill excluded */
    double prefill_ms;        /* tokenize, set up and prefill the prompt */
    double first_text_ms;     /* from the start until the first accepted text */
    double total_ms;          /* from the start to the end of this output */
} tilt_output_info;

/* Fills *out_info (whose struct_size the caller sets) for output `index`. Returns TILT_OK;
 * TILT_ERR_INVALID_ARGUMENT (out_info NULL, struct_size wrong, index out of range); TILT_ERR_INVALID_HANDLE;
 * TILT_ERR_BAD_STATE; TILT_ERR_NOT_INITIALIZED. */
TILT_API tilt_status tilt_request_output_info(const tilt_request * request, int32_t index, tilt_output_info * out_info);

/* Copies output `index`'s per-token log p(token | prefix) at T = 1 (one per token, in the order of
 * tilt_request_output_tokens) into buf (up to buf_count entries); *out_count receives the number of entries. A
 * buf_count too small (buf may then be NULL) returns TILT_ERR_BUFFER_TOO_SMALL with *out_count set. Only for a
 * request made with logprobs, top_logprobs or TILT_STRATEGY_SCORE. Returns TILT_OK; TILT_ERR_INVALID_ARGUMENT
 * (no log-probabilities were asked for, out_count NULL, index out of range); TILT_ERR_BUFFER_TOO_SMALL;
 * TILT_ERR_INVALID_HANDLE; TILT_ERR_BAD_STATE; TILT_ERR_NOT_INITIALIZED. (API 1.3) */
TILT_API tilt_status tilt_request_output_logprobs(const tilt_request * request, int32_t index, double * buf,
                                                  size_t buf_count, size_t * out_count);

/* Copies output `index`'s top alternatives: for each token, top_logprobs (token, log p) pairs from that token's row,
 * most likely first, row-major: tokens[t * top_logprobs + j], logprobs[t * top_logprobs + j]. *out_count receives
 * n_tokens * top_logprobs. Errors as tilt_request_output_logprobs; TILT_ERR_INVALID_ARGUMENT also when the request
 * asked for no alternatives. For TILT_STRATEGY_SCORE, the continuation is the greedy one exactly when every token
 * equals its row's first alternative. (API 1.3) */
TILT_API tilt_status tilt_request_output_top_logprobs(const tilt_request * request, int32_t index, int32_t * tokens,
                                                      double * logprobs, size_t buf_count, size_t * out_count);

/* Releases the request and its outputs. Freeing a running request (from another thread) cancels it; its run
 * still returns normally, with TILT_ERR_CANCELLED. NULL: TILT_OK. Returns TILT_OK; TILT_ERR_INVALID_HANDLE
 * (already freed or not a request: nothing happens). */
TILT_API tilt_status tilt_request_free(tilt_request * request);

#ifdef __cplusplus
}
#endif

#endif /* TILT_H */
