/* Tests of the C API on the default model (stories260K). Run one case per process: tilt_test_api CASE
 * (ctest registers each), or tilt_test_api all. A case fails on the first broken expectation. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tilt.h"

static int g_failures;

#define EXPECT(cond, ...) do { if (!(cond)) { \
    fprintf(stderr, "%s:%d: expected %s: ", __FILE__, __LINE__, #cond); fprintf(stderr, __VA_ARGS__); \
    fprintf(stderr, "\n"); g_failures++; return; } } while (0)

/* Expects a status and, for errors, a non-empty last error. */
#define EXPECT_STATUS(call, want) do { tilt_status got_ = (call); \
    EXPECT(got_ == (want), "%s gave %s (%s), want %s", #call, tilt_status_name(got_), tilt_last_error(), \
           tilt_status_name(want)); \
    EXPECT((want) == TILT_OK ? tilt_last_error()[0] == '\0' : tilt_last_error()[0] != '\0', \
           "%s: last error '%s' after %s", #call, tilt_last_error(), tilt_status_name(want)); } while (0)

#define OK(call) EXPECT_STATUS(call, TILT_OK)

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* ---- fixtures ------------------------------------------------------------------------------------------------ */

/* The test reward: the number of letters 'e' in the text. Records what the engine asked. */
typedef struct reward_log {
    pthread_t runner;       /* the thread that called tilt_request_run */
    int calls, finished_calls, off_thread_calls;
    double max_finished;    /* highest reward the callback gave */
    int mode;               /* 0 normal, 1 return an error code, 2 return NaN, 3 write nothing */
    tilt_request * cancel;  /* when set, cancel this request from inside the callback */
} reward_log;

static double count_e(const char * text) {
    double n = 0;
    for (const char * p = text; *p; p++) n += *p == 'e';
    return n;
}

static int32_t test_reward(void * user_data, const char * prompt, const char * text, int32_t finished, double * out) {
    reward_log * log = user_data;
    log->calls++;
    if (!pthread_equal(pthread_self(), log->runner)) log->off_thread_calls++;
    if (prompt == NULL || text == NULL || !isnan(*out)) return 99; /* the header promises NaN on entry */
    if (log->cancel != NULL) tilt_request_cancel(log->cancel);
    switch (log->mode) {
        case 1: return 7;
        case 2: *out = NAN; return 0;
        case 3: return 0;
        default: break;
    }
    *out = count_e(text);
    log->finished_calls += finished != 0;
    if (*out > log->max_finished) log->max_finished = *out;
    return 0;
}

static tilt_model * g_model;

static int setup(void) {
    tilt_status s = tilt_runtime_init(NULL);
    if (s == TILT_OK) s = tilt_model_load(NULL, NULL, &g_model);
    if (s != TILT_OK) {
        fprintf(stderr, "setup: %s: %s\n", tilt_status_name(s), tilt_last_error());
        return 0;
    }
    return 1;
}

static tilt_request_options options(int32_t strategy, int32_t max_tokens) {
    tilt_request_options o = tilt_request_default_options();
    o.strategy = strategy;
    o.max_tokens = max_tokens;
    o.seed = 42;
    return o;
}

/* Reads output index's text into a fresh buffer (caller frees). */
static char * output_text(tilt_request * r, int32_t index) {
    size_t need = 0;
    if (tilt_request_output_text(r, index, NULL, 0, &need) != TILT_ERR_BUFFER_TOO_SMALL || need == 0) return NULL;
    char * buf = malloc(need);
    if (buf != NULL && tilt_request_output_text(r, index, buf, need, &need) != TILT_OK) {
        free(buf);
        return NULL;
    }
    return buf;
}

/* Collects streamed events. */
typedef struct stream_log {
    int text_events, scored_events, step_events, done_events;
    int stop_after_text;    /* return non-zero at this TEXT event (1-based); 0 = never */
    char text[8192];
    size_t used;
    int bad_event;
} stream_log;

static int32_t test_stream(void * user_data, const tilt_event * ev) {
    stream_log * log = user_data;
    if (ev->struct_size != sizeof(tilt_event) || ev->text == NULL) log->bad_event = 1;
    switch (ev->kind) {
        case TILT_EVENT_TEXT:
            log->text_events++;
            if (strlen(ev->text) != ev->text_len || ev->n_tokens < 1 || ev->tokens == NULL) log->bad_event = 1;
            if (log->used + ev->text_len < sizeof log->text) {
                memcpy(log->text + log->used, ev->text, ev->text_len + 1);
                log->used += ev->text_len;
            }
            if (log->stop_after_text && log->text_events >= log->stop_after_text) return 1;
            break;
        case TILT_EVENT_CANDIDATES_SCORED:
            log->scored_events++;
            if (ev->n_scores < 1 || ev->scores == NULL || ev->chosen < 0 || ev->chosen >= ev->n_scores) log->bad_event = 1;
            break;
        case TILT_EVENT_STEP: log->step_events++; break;
        case TILT_EVENT_OUTPUT_DONE: log->done_events++; break;
        default: log->bad_event = 1;
    }
    return 0;
}

static void expect_no_live_handles(void) {
    int64_t live = -1;
    OK(tilt_runtime_live_handles(&live));
    EXPECT(live == 0, "%lld handles still live", (long long)live);
}

/* ---- cases --------------------------------------------------------------------------------------------------- */

static void api_version(void) {
    EXPECT(tilt_api_version() == TILT_API_VERSION, "library 0x%x, header 0x%x", tilt_api_version(), TILT_API_VERSION);
    EXPECT(tilt_api_version() >> 16 == TILT_API_VERSION_MAJOR, "major");
    EXPECT(strcmp(tilt_status_name(TILT_ERR_CANCELLED), "TILT_ERR_CANCELLED") == 0, "status name");
    EXPECT(strcmp(tilt_status_name(12345), "TILT_UNKNOWN_STATUS") == 0, "unknown status name");
    for (tilt_status s = TILT_ERR_BUSY; s <= TILT_OK; s++)
        EXPECT(strcmp(tilt_status_name(s), "TILT_UNKNOWN_STATUS") != 0, "status %d has no name", s);
    tilt_request_options o = tilt_request_default_options();
    EXPECT(o.struct_size == sizeof o && o.strategy == TILT_STRATEGY_BLOCKWISE && o.k == 8 && o.block_size == 8 &&
           o.n == 4 && o.samples == 1 && o.max_tokens == 128 && o.temperature == 1.0f && o.top_p == 1.0f &&
           o.beta == 1.0 && o.deadline_ms == 0, "request defaults");
    tilt_model_options m = tilt_model_default_options();
    EXPECT(m.struct_size == sizeof m && m.backend == TILT_BACKEND_AUTO && m.native_library == NULL, "model defaults");
    /* the init below also runs the ABI and defaults check against the managed side */
    OK(tilt_runtime_init(NULL));
    OK(tilt_runtime_ping());
}

static void not_initialized(void) {
    EXPECT_STATUS(tilt_runtime_ping(), TILT_ERR_NOT_INITIALIZED);
    tilt_model * m = NULL;
    EXPECT_STATUS(tilt_model_load(NULL, NULL, &m), TILT_ERR_NOT_INITIALIZED);
    EXPECT(m == NULL, "out_model written on failure");
    OK(tilt_model_free(NULL));
    OK(tilt_request_free(NULL));
    OK(tilt_runtime_shutdown()); /* shutting down what never started is fine */
}

static void init_errors(void) {
    tilt_runtime_options o = tilt_runtime_default_options();
    o.struct_size = 3;
    EXPECT_STATUS(tilt_runtime_init(&o), TILT_ERR_INVALID_ARGUMENT);
    o = tilt_runtime_default_options();
    o.managed_dir = "/nonexistent/tilt";
    EXPECT_STATUS(tilt_runtime_init(&o), TILT_ERR_RUNTIME);
    EXPECT(strstr(tilt_last_error(), "/nonexistent/tilt") != NULL, "message names the folder: %s", tilt_last_error());
    EXPECT_STATUS(tilt_runtime_ping(), TILT_ERR_NOT_INITIALIZED);
    OK(tilt_runtime_init(NULL)); /* a failed init can be retried */
    OK(tilt_runtime_init(NULL)); /* and a second init is a no-op */
    OK(tilt_runtime_ping());
    OK(tilt_runtime_shutdown());
    EXPECT_STATUS(tilt_runtime_ping(), TILT_ERR_NOT_INITIALIZED);
    OK(tilt_runtime_init(NULL)); /* re-init after shutdown */
    OK(tilt_runtime_ping());
}

static void happy_path_blockwise(void) {
    if (!setup()) { g_failures++; return; }
    tilt_model_info mi = { .struct_size = sizeof mi };
    OK(tilt_model_get_info(g_model, &mi));
    EXPECT(mi.vocab_size == 512 && mi.hidden_size > 0 && mi.is_tabular == 0, "vocab %d hidden %d", mi.vocab_size, mi.hidden_size);

    reward_log rl = { .runner = pthread_self() };
    tilt_reward * reward = NULL;
    tilt_request * req = NULL;
    OK(tilt_reward_create_callback(test_reward, &rl, "count-e", &reward));
    tilt_request_options o = options(TILT_STRATEGY_BLOCKWISE, 48);
    o.k = 4;
    o.block_size = 8;
    OK(tilt_request_create(g_model, "Once upon a time", &o, reward, NULL, &req));
    OK(tilt_reward_free(reward)); /* the request keeps what it needs */
    EXPECT_STATUS(tilt_request_output_count(req, &(int32_t){0}), TILT_ERR_BAD_STATE);

    stream_log sl = { 0 };
    OK(tilt_request_run(req, test_stream, &sl));
    EXPECT(!sl.bad_event, "malformed event");
    EXPECT(sl.text_events >= 1 && sl.scored_events == sl.text_events && sl.done_events == 1, "events %d/%d/%d",
           sl.text_events, sl.scored_events, sl.done_events);
    EXPECT(rl.calls > 0 && rl.off_thread_calls == 0, "%d reward calls, %d off the running thread", rl.calls,
           rl.off_thread_calls);

    int32_t count = 0;
    OK(tilt_request_output_count(req, &count));
    EXPECT(count == 1, "%d outputs", count);
    char * text = output_text(req, 0);
    EXPECT(text != NULL, "no text");
    EXPECT(strcmp(text, sl.text) == 0, "streamed '%s' != output '%s'", sl.text, text);
    tilt_output_info info = { .struct_size = sizeof info };
    OK(tilt_request_output_info(req, 0, &info));
    EXPECT(info.index == 0 && info.n_tokens >= 1 && info.n_tokens <= 48, "n_tokens %d", info.n_tokens);
    EXPECT(info.finish == TILT_FINISH_EOS || info.finish == TILT_FINISH_LENGTH, "finish %d", info.finish);
    EXPECT(info.has_reward == 1 && info.reward == count_e(text), "reward %g for '%s'", info.reward, text);
    EXPECT(info.kl_method == TILT_KL_BLOCK_ESTIMATE && info.kl_bound_method == TILT_KL_BLOCK_BOUND, "kl methods");
    EXPECT(info.kl >= 0 && info.kl <= info.kl_bound + 1e-9, "kl %g bound %g", info.kl, info.kl_bound);
    EXPECT(isfinite(info.logprob) && info.logprob < 0, "logprob %g", info.logprob);
    EXPECT(info.total_ms > 0 && info.prefill_ms >= 0 && info.first_text_ms <= info.total_ms, "timings");
    EXPECT(info.tokens_evaluated >= info.n_tokens && info.decode_calls > 0, "evaluated %lld", (long long)info.tokens_evaluated);
    free(text);

    int32_t tokens[256];
    size_t n = 0;
    OK(tilt_request_output_tokens(req, 0, tokens, 256, &n));
    EXPECT(n == (size_t)info.n_tokens, "%zu tokens, info says %d", n, info.n_tokens);
    for (size_t i = 0; i < n; i++) EXPECT(tokens[i] >= 0 && tokens[i] < mi.vocab_size, "token %d", tokens[i]);

    OK(tilt_request_free(req));
    OK(tilt_model_free(g_model));
    expect_no_live_handles();
}

static void best_of_n_steering(void) {
    if (!setup()) { g_failures++; return; }
    for (uint64_t seed = 1; seed <= 3; seed++) {
        reward_log rl = { .runner = pthread_self(), .max_finished = -1 };
        tilt_reward * reward = NULL;
        tilt_request * req = NULL;
        OK(tilt_reward_create_callback(test_reward, &rl, NULL, &reward));
        tilt_request_options o = options(TILT_STRATEGY_BEST_OF_N, 40);
        o.n = 8;
        o.seed = seed;
        OK(tilt_request_create(g_model, "Once upon a time", &o, reward, NULL, &req));
        OK(tilt_request_run(req, NULL, NULL));
        tilt_output_info info = { .struct_size = sizeof info };
        OK(tilt_request_output_info(req, 0, &info));
        char * text = output_text(req, 0);
        EXPECT(text != NULL, "no text");
        /* best-of-n scores each of the n candidates once: the winner must carry the highest of those rewards */
        EXPECT(rl.calls == 8, "%d reward calls for n = 8", rl.calls);
        EXPECT(info.reward == rl.max_finished, "winner reward %g, best candidate %g", info.reward, rl.max_finished);
        EXPECT(count_e(text) == info.reward, "winner text scores %g, reported %g", count_e(text), info.reward);
        EXPECT(info.kl_method == TILT_KL_BON_ESTIMATE && info.kl_bound_method == TILT_KL_BON_BOUND, "kl methods");
        EXPECT(fabs(info.kl_bound - (log(8.0) - 7.0 / 8.0)) < 1e-9, "bound %g", info.kl_bound);
        EXPECT(info.win_rate >= 0.5 && info.win_rate <= 1.0, "win rate %g", info.win_rate);
        free(text);
        OK(tilt_request_free(req));
        OK(tilt_reward_free(reward));
    }
    OK(tilt_model_free(g_model));
    expect_no_live_handles();
}

static void invalid_handles(void) {
    if (!setup()) { g_failures++; return; }
    reward_log rl = { .runner = pthread_self() };
    tilt_reward * reward = NULL;
    tilt_request * req = NULL;
    tilt_model_info mi = { .struct_size = sizeof mi };
    OK(tilt_reward_create_callback(test_reward, &rl, NULL, &reward));
    EXPECT_STATUS(tilt_model_get_info(NULL, &mi), TILT_ERR_INVALID_HANDLE);
    EXPECT_STATUS(tilt_model_get_info((tilt_model *)(uintptr_t)0x1234, &mi), TILT_ERR_INVALID_HANDLE);
    EXPECT_STATUS(tilt_model_get_info((tilt_model *)&mi, &mi), TILT_ERR_INVALID_HANDLE); /* a real address */
    EXPECT_STATUS(tilt_model_get_info((tilt_model *)reward, &mi), TILT_ERR_INVALID_HANDLE); /* wrong kind */
    EXPECT(strstr(tilt_last_error(), "tilt_reward") != NULL, "names the kind: %s", tilt_last_error());
    EXPECT_STATUS(tilt_request_create(NULL, "x", NULL, reward, NULL, &req), TILT_ERR_INVALID_HANDLE);
    EXPECT_STATUS(tilt_request_create(g_model, "x", NULL, (tilt_reward *)g_model, NULL, &req), TILT_ERR_INVALID_HANDLE);
    EXPECT_STATUS(tilt_request_run((tilt_request *)g_model, NULL, NULL), TILT_ERR_INVALID_HANDLE);
    EXPECT_STATUS(tilt_request_cancel(NULL), TILT_ERR_INVALID_HANDLE);
    EXPECT_STATUS(tilt_reward_free((tilt_reward *)g_model), TILT_ERR_INVALID_HANDLE); /* nothing freed */
    OK(tilt_model_get_info(g_model, &mi));

    tilt_request_options o = options(TILT_STRATEGY_BLOCKWISE, 8);
    OK(tilt_request_create(g_model, "x", &o, reward, NULL, &req));
    OK(tilt_request_free(req));
    EXPECT_STATUS(tilt_request_free(req), TILT_ERR_INVALID_HANDLE);                 /* double free */
    EXPECT_STATUS(tilt_request_run(req, NULL, NULL), TILT_ERR_INVALID_HANDLE);      /* use after free */
    EXPECT_STATUS(tilt_request_output_count(req, &(int32_t){0}), TILT_ERR_INVALID_HANDLE);
    OK(tilt_reward_free(reward));
    EXPECT_STATUS(tilt_reward_free(reward), TILT_ERR_INVALID_HANDLE);
    OK(tilt_model_free(g_model));
    EXPECT_STATUS(tilt_model_free(g_model), TILT_ERR_INVALID_HANDLE);
    EXPECT_STATUS(tilt_model_get_info(g_model, &mi), TILT_ERR_INVALID_HANDLE);
    expect_no_live_handles();
}

static void invalid_arguments(void) {
    if (!setup()) { g_failures++; return; }
    reward_log rl = { .runner = pthread_self() };
    tilt_reward * reward = NULL;
    tilt_request * req = NULL;
    OK(tilt_reward_create_callback(test_reward, &rl, NULL, &reward));
    EXPECT_STATUS(tilt_reward_create_callback(NULL, NULL, NULL, &reward), TILT_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(tilt_reward_create_callback(test_reward, NULL, NULL, NULL), TILT_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(tilt_model_load(NULL, NULL, NULL), TILT_ERR_INVALID_ARGUMENT);
    tilt_model_options mo = tilt_model_default_options();
    mo.backend = 7;
    EXPECT_STATUS(tilt_model_load(NULL, &mo, &(tilt_model *){NULL}), TILT_ERR_INVALID_ARGUMENT);
    mo = tilt_model_default_options();
    mo.struct_size = 8;
    EXPECT_STATUS(tilt_model_load(NULL, &mo, &(tilt_model *){NULL}), TILT_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(tilt_runtime_live_handles(NULL), TILT_ERR_INVALID_ARGUMENT);
    tilt_model_info mi = { .struct_size = sizeof mi - 4 };
    EXPECT_STATUS(tilt_model_get_info(g_model, &mi), TILT_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(tilt_model_get_info(g_model, NULL), TILT_ERR_INVALID_ARGUMENT);

    tilt_request_options o = options(TILT_STRATEGY_BLOCKWISE, 8);
    EXPECT_STATUS(tilt_request_create(g_model, NULL, &o, reward, NULL, &req), TILT_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(tilt_request_create(g_model, "x", &o, reward, NULL, NULL), TILT_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(tilt_request_create(g_model, "Once \xC3\x28 upon", &o, reward, NULL, &req), TILT_ERR_INVALID_ARGUMENT);
    EXPECT(strstr(tilt_last_error(), "UTF-8") != NULL, "names UTF-8: %s", tilt_last_error());
    EXPECT_STATUS(tilt_request_create(g_model, "\xFF", &o, reward, NULL, &req), TILT_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(tilt_request_create(g_model, "x", &o, NULL, NULL, &req), TILT_ERR_INVALID_ARGUMENT); /* no reward */

    /* each bad field is refused with a message naming it */
    struct { const char * field; tilt_request_options o; } bad[24];
    int n = 0;
#define BAD(name, stmt) do { bad[n].field = name; bad[n].o = options(TILT_STRATEGY_BLOCKWISE, 8); \
    { tilt_request_options * p = &bad[n].o; stmt; } n++; } while (0)
    BAD("struct_size", p->struct_size = 12);
    BAD("strategy", p->strategy = 9);
    BAD("k", p->k = 0);
    BAD("k", p->k = 257);
    BAD("block_size", p->block_size = 0);
    BAD("selection", p->selection = 5);
    BAD("beta", p->beta = NAN);
    BAD("temperature", p->temperature = -1);
    BAD("top_p", p->top_p = 0);
    BAD("max_tokens", p->max_tokens = 0);
    BAD("samples", p->samples = 0);
    BAD("threads", p->threads = -2);
    BAD("deadline_ms", p->deadline_ms = -5);
    BAD("n", (p->strategy = TILT_STRATEGY_BEST_OF_N, p->n = 0));
    BAD("tokenwise_top_k", (p->strategy = TILT_STRATEGY_TOKENWISE, p->tokenwise_top_k = -1));
    BAD("deadline_ms", (p->strategy = TILT_STRATEGY_SAMPLE, p->deadline_ms = 100));
    BAD("alpha", (p->strategy = TILT_STRATEGY_REJECTION, p->alpha = 1.0));
    BAD("every", (p->strategy = TILT_STRATEGY_REJECTION, p->every = 0));
    BAD("every", (p->strategy = TILT_STRATEGY_REJECTION, p->every = 8)); /* not shorter than max_tokens */
    BAD("reserved", p->reserved = 1);
#undef BAD
    for (int i = 0; i < n; i++) {
        EXPECT_STATUS(tilt_request_create(g_model, "x", &bad[i].o, reward, NULL, &req), TILT_ERR_INVALID_ARGUMENT);
        EXPECT(strstr(tilt_last_error(), bad[i].field) != NULL, "case %d: '%s' not named in: %s", i, bad[i].field,
               tilt_last_error());
    }

    OK(tilt_request_create(g_model, "x", &o, reward, NULL, &req));
    OK(tilt_request_run(req, NULL, NULL));
    tilt_output_info info = { .struct_size = 16 };
    EXPECT_STATUS(tilt_request_output_info(req, 0, &info), TILT_ERR_INVALID_ARGUMENT);
    info.struct_size = sizeof info;
    EXPECT_STATUS(tilt_request_output_info(req, 1, &info), TILT_ERR_INVALID_ARGUMENT); /* index out of range */
    EXPECT_STATUS(tilt_request_output_info(req, -1, &info), TILT_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(tilt_request_output_info(req, 0, NULL), TILT_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(tilt_request_output_text(req, 0, NULL, 10, &(size_t){0}), TILT_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(tilt_request_output_text(req, 0, (char[4]){0}, 4, NULL), TILT_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(tilt_request_output_count(req, NULL), TILT_ERR_INVALID_ARGUMENT);
    OK(tilt_request_free(req));
    OK(tilt_reward_free(reward));
    OK(tilt_model_free(g_model));
    expect_no_live_handles();
}

static void buffer_too_small(void) {
    if (!setup()) { g_failures++; return; }
    tilt_request * req = NULL;
    tilt_request_options o = options(TILT_STRATEGY_SAMPLE, 24);
    OK(tilt_request_create(g_model, "Once upon a time", &o, NULL, NULL, &req));
    OK(tilt_request_run(req, NULL, NULL));
    size_t need = 0;
    EXPECT_STATUS(tilt_request_output_text(req, 0, NULL, 0, &need), TILT_ERR_BUFFER_TOO_SMALL);
    EXPECT(need > 1, "need %zu", need);
    char small[4] = { 'a', 'b', 'c', 'd' };
    size_t need2 = 0;
    EXPECT_STATUS(tilt_request_output_text(req, 0, small, need - 1, &need2), TILT_ERR_BUFFER_TOO_SMALL);
    EXPECT(need2 == need && small[0] == 'a', "need %zu then %zu; buffer touched", need, need2);
    char * buf = malloc(need + 8);
    memset(buf, 'x', need + 8);
    OK(tilt_request_output_text(req, 0, buf, need, &need2));
    EXPECT(need2 == need && buf[need - 1] == '\0' && strlen(buf) == need - 1 && buf[need] == 'x', "exact fit");
    free(buf);

    size_t count = 0;
    EXPECT_STATUS(tilt_request_output_tokens(req, 0, NULL, 0, &count), TILT_ERR_BUFFER_TOO_SMALL);
    EXPECT(count >= 1 && count <= 24, "%zu tokens", count);
    int32_t tokens[24];
    OK(tilt_request_output_tokens(req, 0, tokens, count, &count));
    OK(tilt_request_free(req));
    OK(tilt_model_free(g_model));
    expect_no_live_handles();
}

static void callback_errors(void) {
    if (!setup()) { g_failures++; return; }
    const char * expected[] = { "", "returned 7", "non-finite", "non-finite" };
    for (int mode = 1; mode <= 3; mode++) {
        for (int strategy = TILT_STRATEGY_BEST_OF_N; strategy <= TILT_STRATEGY_BLOCKWISE; strategy += 2) {
            reward_log rl = { .runner = pthread_self(), .mode = mode };
            tilt_reward * reward = NULL;
            tilt_request * req = NULL;
            OK(tilt_reward_create_callback(test_reward, &rl, "flaky", &reward));
            tilt_request_options o = options(strategy, 16);
            OK(tilt_request_create(g_model, "Once upon a time", &o, reward, NULL, &req));
            EXPECT_STATUS(tilt_request_run(req, NULL, NULL), TILT_ERR_CALLBACK);
            EXPECT(strstr(tilt_last_error(), expected[mode]) && strstr(tilt_last_error(), "flaky"),
                   "mode %d: %s", mode, tilt_last_error());
            EXPECT(rl.calls >= 1, "not called");
            int32_t count = -1;
            OK(tilt_request_output_count(req, &count)); /* the failed run left a readable request */
            EXPECT(count == 0, "%d outputs", count);
            OK(tilt_request_free(req));
            OK(tilt_reward_free(reward));
        }
    }
    OK(tilt_model_free(g_model));
    expect_no_live_handles();
}

static void model_load_errors(void) {
    OK(tilt_runtime_init(NULL));
    tilt_model * m = NULL;
    EXPECT_STATUS(tilt_model_load("/nonexistent/model.gguf", NULL, &m), TILT_ERR_MODEL_LOAD);
    EXPECT(m == NULL && strstr(tilt_last_error(), "/nonexistent/model.gguf"), "%s", tilt_last_error());
    char path[] = "/tmp/tilt-garbage-XXXXXX";
    int fd = mkstemp(path);
    EXPECT(fd >= 0, "mkstemp");
    EXPECT(write(fd, "GGUF\x03\x00\x00\x00garbage", 15) == 15, "write");
    close(fd);
    EXPECT_STATUS(tilt_model_load(path, NULL, &m), TILT_ERR_MODEL_LOAD);
    unlink(path);
    tilt_model_options mo = tilt_model_default_options();
    mo.native_library = "/nonexistent/libllama.so";
    EXPECT_STATUS(tilt_model_load(NULL, &mo, &m), TILT_ERR_MODEL_LOAD);
    EXPECT(strstr(tilt_last_error(), "libllama") != NULL, "%s", tilt_last_error());
    /* A real shared library that is not llama.cpp is refused before it is bound: the default load below still works. */
    mo.native_library = access("/lib/x86_64-linux-gnu/libc.so.6", R_OK) == 0 ? "/lib/x86_64-linux-gnu/libc.so.6" : "/lib64/libc.so.6";
    EXPECT_STATUS(tilt_model_load(NULL, &mo, &m), TILT_ERR_MODEL_LOAD);
    EXPECT(m == NULL && strstr(tilt_last_error(), "is not a llama.cpp library") != NULL, "%s", tilt_last_error());

    if (!setup()) { g_failures++; return; }
    tilt_value * v = NULL;
    tilt_reward * r = NULL;
    /* Every field of a head file is validated: a null one is TILT_ERR_MODEL_LOAD naming it, not TILT_ERR_INTERNAL. */
    char head[] = "/tmp/tilt-null-sha-XXXXXX";
    int hfd = mkstemp(head);
    EXPECT(hfd >= 0, "mkstemp");
    static const char json[] = "{\"format\":\"tilt-head/1\",\"kind\":\"linear\",\"role\":\"value\","
                               "\"modelFingerprint\":\"sha256:x\",\"hiddenSize\":2,\"weightsSha256\":null}";
    uint32_t json_length = (uint32_t)(sizeof json - 1);
    unsigned char length[4] = { (unsigned char)json_length, (unsigned char)(json_length >> 8), 0, 0 };
    static const float weights[3] = { 0 };
    EXPECT(write(hfd, "TILTHEAD", 8) == 8 && write(hfd, length, 4) == 4 && write(hfd, json, json_length) == (ssize_t)json_length
           && write(hfd, weights, sizeof weights) == (ssize_t)sizeof weights, "write");
    close(hfd);
    EXPECT_STATUS(tilt_value_load_head(g_model, head, &v), TILT_ERR_MODEL_LOAD);
    EXPECT(v == NULL && strstr(tilt_last_error(), "field 'weightsSha256' is null") != NULL, "%s", tilt_last_error());
    unlink(head);
    EXPECT_STATUS(tilt_value_load_head(g_model, "/nonexistent/v.head", &v), TILT_ERR_MODEL_LOAD);
    EXPECT_STATUS(tilt_reward_load_head(g_model, "/nonexistent/r.head", &r), TILT_ERR_MODEL_LOAD);
    EXPECT_STATUS(tilt_value_load_head(NULL, "/nonexistent/v.head", &v), TILT_ERR_INVALID_HANDLE);
    OK(tilt_model_free(g_model));
    expect_no_live_handles();
}

static void engine_errors(void) {
    if (!setup()) { g_failures++; return; }
    tilt_reward * r = NULL;
    EXPECT_STATUS(tilt_reward_create_spec(NULL, "nonsense:1", &r), TILT_ERR_ENGINE);
    EXPECT(strstr(tilt_last_error(), "nonsense") != NULL, "%s", tilt_last_error());
    EXPECT_STATUS(tilt_reward_create_spec(NULL, "head:/nonexistent.head", &r), TILT_ERR_ENGINE); /* needs a model */
    EXPECT_STATUS(tilt_reward_create_spec(NULL, "lexicon:/nonexistent/words.txt", &r), TILT_ERR_ENGINE);
    OK(tilt_reward_create_spec(NULL, "0.5*lexicon:sentiment+0.5*length:20", &r)); /* built-in lists are found */

    /* a prompt longer than the context is refused when the request runs */
    size_t len = 40000;
    char * prompt = malloc(len + 1);
    for (size_t i = 0; i < len; i++) prompt[i] = i % 5 == 4 ? ' ' : 'a' + (char)(i % 7);
    prompt[len] = '\0';
    tilt_request * req = NULL;
    tilt_request_options o = options(TILT_STRATEGY_BEST_OF_N, 16);
    OK(tilt_request_create(g_model, prompt, &o, r, NULL, &req));
    free(prompt);
    EXPECT_STATUS(tilt_request_run(req, NULL, NULL), TILT_ERR_ENGINE);
    EXPECT(strstr(tilt_last_error(), "context") != NULL, "%s", tilt_last_error());
    OK(tilt_request_free(req));
    OK(tilt_reward_free(r));
    OK(tilt_model_free(g_model));
    expect_no_live_handles();
}

static void unsupported_backend(void) {
    OK(tilt_runtime_init(NULL));
    tilt_model_options mo = tilt_model_default_options();
    mo.backend = TILT_BACKEND_CUDA;
    tilt_model * m = NULL;
    tilt_status s = tilt_model_load(NULL, &mo, &m);
    /* on a machine with a CUDA device the load succeeds */
    EXPECT(s == TILT_ERR_UNSUPPORTED || s == TILT_OK, "%s: %s", tilt_status_name(s), tilt_last_error());
    if (s == TILT_ERR_UNSUPPORTED) EXPECT(strstr(tilt_last_error(), "CUDA") != NULL, "%s", tilt_last_error());
    printf("TILT_BACKEND_CUDA: %s %s\n", tilt_status_name(s), tilt_last_error());
    OK(tilt_model_free(m));
    expect_no_live_handles();
}

/* Calls that do not fit the state, made from inside a running request's stream callback. */
typedef struct reentry {
    tilt_request * self;
    tilt_request * other; /* another request on the same model */
    tilt_status run_other, run_self, shutdown, read_self;
    int done;
} reentry;

static int32_t reentry_stream(void * user_data, const tilt_event * ev) {
    reentry * r = user_data;
    if (ev->kind != TILT_EVENT_TEXT || r->done) return 0;
    r->done = 1;
    r->run_other = tilt_request_run(r->other, NULL, NULL);
    r->run_self = tilt_request_run(r->self, NULL, NULL);
    r->shutdown = tilt_runtime_shutdown();
    r->read_self = tilt_request_output_count(r->self, &(int32_t){0});
    return 0;
}

static void bad_state(void) {
    if (!setup()) { g_failures++; return; }
    tilt_reward * reward = NULL;
    OK(tilt_reward_create_spec(NULL, "length:10", &reward));
    tilt_request_options o = options(TILT_STRATEGY_BLOCKWISE, 16);
    reentry r = { 0 };
    OK(tilt_request_create(g_model, "Once", &o, reward, NULL, &r.self));
    OK(tilt_request_create(g_model, "Once", &o, reward, NULL, &r.other));
    EXPECT_STATUS(tilt_request_output_count(r.self, &(int32_t){0}), TILT_ERR_BAD_STATE); /* not run yet */
    OK(tilt_request_run(r.self, reentry_stream, &r));
    EXPECT(r.done, "callback never ran");
    EXPECT(r.run_other == TILT_ERR_BAD_STATE, "run on the same model from a callback: %s", tilt_status_name(r.run_other));
    EXPECT(r.run_self == TILT_ERR_BAD_STATE, "re-run from its own callback: %s", tilt_status_name(r.run_self));
    EXPECT(r.shutdown == TILT_ERR_BAD_STATE, "shutdown while running: %s", tilt_status_name(r.shutdown));
    EXPECT(r.read_self == TILT_ERR_BAD_STATE, "read while running: %s", tilt_status_name(r.read_self));
    EXPECT_STATUS(tilt_request_run(r.self, NULL, NULL), TILT_ERR_BAD_STATE); /* a request runs once */
    OK(tilt_request_run(r.other, NULL, NULL)); /* the refused run did not spoil the other request */
    OK(tilt_request_free(r.self));
    OK(tilt_request_free(r.other));
    OK(tilt_reward_free(reward));
    OK(tilt_model_free(g_model));
    expect_no_live_handles();
}

typedef struct canceller {
    tilt_request * req;
    int delay_ms;
    int free_instead;
    tilt_status status;
} canceller;

static void * cancel_later(void * arg) {
    canceller * c = arg;
    struct timespec ts = { c->delay_ms / 1000, (long)(c->delay_ms % 1000) * 1000000L };
    nanosleep(&ts, NULL);
    c->status = c->free_instead ? tilt_request_free(c->req) : tilt_request_cancel(c->req);
    return NULL;
}

/* A request long enough to still be running when the other thread acts (hundreds of outputs). */
static tilt_request * long_request(tilt_reward ** reward) {
    tilt_request * req = NULL;
    tilt_request_options o = options(TILT_STRATEGY_BLOCKWISE, 64);
    o.samples = 1000;
    if (tilt_reward_create_spec(NULL, "lexicon:sentiment", reward) != TILT_OK ||
        tilt_request_create(g_model, "Once upon a time", &o, *reward, NULL, &req) != TILT_OK)
        return NULL;
    return req;
}

static void cancel_from_thread(void) {
    if (!setup()) { g_failures++; return; }
    tilt_reward * reward = NULL;
    tilt_request * req = long_request(&reward);
    EXPECT(req != NULL, "%s", tilt_last_error());
    canceller c = { req, 300, 0, -100 };
    pthread_t t;
    pthread_create(&t, NULL, cancel_later, &c);
    double start = now_ms();
    EXPECT_STATUS(tilt_request_run(req, NULL, NULL), TILT_ERR_CANCELLED);
    double elapsed = now_ms() - start;
    pthread_join(t, NULL);
    EXPECT(c.status == TILT_OK, "cancel gave %s", tilt_status_name(c.status));
    EXPECT(elapsed < 10000, "the run took %.0f ms after a cancel at 300 ms", elapsed);
    EXPECT(strstr(tilt_last_error(), "tilt_request_cancel") != NULL, "%s", tilt_last_error());
    int32_t count = -1;
    OK(tilt_request_output_count(req, &count)); /* the outputs completed before the cancel stay readable */
    EXPECT(count >= 0 && count < 1000, "%d outputs", count);
    printf("cancelled after %.0f ms with %d outputs complete\n", elapsed, count);
    OK(tilt_request_cancel(req)); /* cancelling a finished request is harmless */
    OK(tilt_request_free(req));
    OK(tilt_reward_free(reward));
    OK(tilt_model_free(g_model));
    expect_no_live_handles();
}

static void cancel_from_stream(void) {
    if (!setup()) { g_failures++; return; }
    tilt_reward * reward = NULL;
    tilt_request * req = NULL;
    OK(tilt_reward_create_spec(NULL, "length:20", &reward));
    tilt_request_options o = options(TILT_STRATEGY_BLOCKWISE, 64);
    o.samples = 3;
    OK(tilt_request_create(g_model, "Once upon a time", &o, reward, NULL, &req));
    stream_log sl = { .stop_after_text = 2 };
    EXPECT_STATUS(tilt_request_run(req, test_stream, &sl), TILT_ERR_CANCELLED);
    EXPECT(strstr(tilt_last_error(), "stream callback returned 1") != NULL, "%s", tilt_last_error());
    EXPECT(sl.text_events == 2, "%d text events after asking to stop at 2", sl.text_events);

    /* a reward callback may cancel its own request too */
    tilt_request * req2 = NULL;
    reward_log rl = { .runner = pthread_self() };
    tilt_reward * cb = NULL;
    OK(tilt_reward_create_callback(test_reward, &rl, NULL, &cb));
    OK(tilt_request_create(g_model, "Once upon a time", &o, cb, NULL, &req2));
    rl.cancel = req2;
    EXPECT_STATUS(tilt_request_run(req2, NULL, NULL), TILT_ERR_CANCELLED);
    OK(tilt_request_free(req));
    OK(tilt_request_free(req2));
    OK(tilt_reward_free(reward));
    OK(tilt_reward_free(cb));
    OK(tilt_model_free(g_model));
    expect_no_live_handles();
}

static void cancel_before_run(void) {
    if (!setup()) { g_failures++; return; }
    tilt_reward * reward = NULL;
    tilt_request * req = NULL;
    OK(tilt_reward_create_spec(NULL, "length:20", &reward));
    tilt_request_options o = options(TILT_STRATEGY_TOKENWISE, 8);
    OK(tilt_request_create(g_model, "Once upon a time", &o, reward, NULL, &req));
    OK(tilt_request_cancel(req));
    EXPECT_STATUS(tilt_request_run(req, NULL, NULL), TILT_ERR_CANCELLED);
    OK(tilt_request_free(req));
    OK(tilt_reward_free(reward));
    OK(tilt_model_free(g_model));
    expect_no_live_handles();
}

static void free_while_running(void) {
    if (!setup()) { g_failures++; return; }
    tilt_reward * reward = NULL;
    tilt_request * req = long_request(&reward);
    EXPECT(req != NULL, "%s", tilt_last_error());
    OK(tilt_model_free(g_model)); /* the running request keeps the model alive */
    canceller c = { req, 200, 1, -100 };
    pthread_t t;
    pthread_create(&t, NULL, cancel_later, &c);
    EXPECT_STATUS(tilt_request_run(req, NULL, NULL), TILT_ERR_CANCELLED);
    pthread_join(t, NULL);
    EXPECT(c.status == TILT_OK, "free gave %s", tilt_status_name(c.status));
    EXPECT(strstr(tilt_last_error(), "freed") != NULL, "%s", tilt_last_error());
    EXPECT_STATUS(tilt_request_output_count(req, &(int32_t){0}), TILT_ERR_INVALID_HANDLE);
    OK(tilt_reward_free(reward));
    expect_no_live_handles();
}

static void deadline(void) {
    if (!setup()) { g_failures++; return; }
    tilt_reward * reward = NULL;
    tilt_request * req = NULL;
    OK(tilt_reward_create_spec(NULL, "length:20", &reward));
    tilt_request_options o = options(TILT_STRATEGY_BLOCKWISE, 128);
    o.samples = 1000;
    o.deadline_ms = 150;
    OK(tilt_request_create(g_model, "Once upon a time", &o, reward, NULL, &req));
    double start = now_ms();
    OK(tilt_request_run(req, NULL, NULL)); /* a deadline is an outcome, not an error */
    double elapsed = now_ms() - start;
    int32_t count = 0;
    OK(tilt_request_output_count(req, &count));
    EXPECT(count >= 1 && count < 1000, "%d outputs", count);
    tilt_output_info info = { .struct_size = sizeof info };
    OK(tilt_request_output_info(req, count - 1, &info));
    /* The deadline usually cuts the output in progress, the last one, marked DEADLINE; when it passes during an
       output's last block, that output completes normally and no further output starts (count < 1000 above).
       Either way no output before the last is partial. */
    (void)info;
    for (int32_t i = 0; i + 1 < count; i++) {
        tilt_output_info earlier = { .struct_size = sizeof earlier };
        OK(tilt_request_output_info(req, i, &earlier));
        EXPECT(earlier.finish != TILT_FINISH_DEADLINE, "output %d before the last is marked partial", i);
    }
    EXPECT(elapsed < 5000, "took %.0f ms for a 150 ms deadline", elapsed);
    OK(tilt_request_free(req));
    OK(tilt_reward_free(reward));
    OK(tilt_model_free(g_model));
    expect_no_live_handles();
}

typedef struct runner {
    tilt_request * req;
    tilt_status status;
} runner;

static void * run_request(void * arg) {
    runner * r = arg;
    r->status = tilt_request_run(r->req, NULL, NULL);
    return NULL;
}

/* Eight requests of every strategy on one model: run one by one, then from eight threads at once (the engine decodes
   them in shared batches). Each concurrent output equals its serial one: noise is keyed by each request's own seed. */
#define CONCURRENT 8
static tilt_request_options concurrent_options(int i) {
    static const int32_t strategies[CONCURRENT] = { TILT_STRATEGY_BLOCKWISE, TILT_STRATEGY_BEST_OF_N, TILT_STRATEGY_TOKENWISE,
                                                    TILT_STRATEGY_SAMPLE, TILT_STRATEGY_BLOCKWISE, TILT_STRATEGY_BEST_OF_N,
                                                    TILT_STRATEGY_TOKENWISE, TILT_STRATEGY_SAMPLE };
    tilt_request_options o = options(strategies[i], 16 + 2 * i);
    o.seed = 100 + (uint64_t)i;
    o.k = 2 + i % 3;
    o.n = 2 + i % 4;
    o.block_size = 4;
    o.tokenwise_top_k = 4;
    o.samples = strategies[i] == TILT_STRATEGY_SAMPLE ? 3 : 1;
    return o;
}

static void concurrent_runs(void) {
    if (!setup()) { g_failures++; return; }
    tilt_reward * reward = NULL;
    OK(tilt_reward_create_spec(NULL, "lexicon:sentiment", &reward));
    runner serial[CONCURRENT] = { 0 }, together[CONCURRENT] = { 0 };
    pthread_t t[CONCURRENT];
    for (int i = 0; i < CONCURRENT; i++) {
        tilt_request_options o = concurrent_options(i);
        OK(tilt_request_create(g_model, "Once upon a time", &o, reward, NULL, &serial[i].req));
        OK(tilt_request_create(g_model, "Once upon a time", &o, reward, NULL, &together[i].req));
        run_request(&serial[i]);
    }
    for (int i = 0; i < CONCURRENT; i++) pthread_create(&t[i], NULL, run_request, &together[i]);
    for (int i = 0; i < CONCURRENT; i++) pthread_join(t[i], NULL);
    for (int i = 0; i < CONCURRENT; i++) {
        EXPECT(serial[i].status == TILT_OK && together[i].status == TILT_OK, "run %d: %s / %s", i,
               tilt_status_name(serial[i].status), tilt_status_name(together[i].status));
        int32_t count = 0, count_serial = -1;
        OK(tilt_request_output_count(together[i].req, &count));
        OK(tilt_request_output_count(serial[i].req, &count_serial));
        EXPECT(count == count_serial && count >= 1, "run %d: %d outputs vs %d serially", i, count, count_serial);
        for (int32_t j = 0; j < count && j < count_serial; j++) {
            char * a = output_text(serial[i].req, j);
            char * b = output_text(together[i].req, j);
            EXPECT(a && b && strcmp(a, b) == 0, "run %d output %d differs: '%s' serially vs '%s' concurrently", i, j, a, b);
            free(a);
            free(b);
        }
        OK(tilt_request_free(serial[i].req));
        OK(tilt_request_free(together[i].req));
    }
    OK(tilt_reward_free(reward));
    OK(tilt_model_free(g_model));
    expect_no_live_handles();
}

/* API 1.2: stop strings end each output (finish = TILT_FINISH_STOP, the stop not in the text); a 1.1-sized struct
 * (without the stop fields) is still accepted. */
static void stop_sequences(void) {
    if (!setup()) { g_failures++; return; }
    const char * stops[] = { "." };
    tilt_request_options o = options(TILT_STRATEGY_SAMPLE, 64);
    o.samples = 4;
    o.stop = stops;
    o.n_stop = 1;
    tilt_request * req = NULL;
    OK(tilt_request_create(g_model, "Once upon a time", &o, NULL, NULL, &req));
    OK(tilt_request_run(req, NULL, NULL));
    int stopped = 0;
    for (int i = 0; i < 4; i++) {
        char text[1024];
        size_t need = 0;
        OK(tilt_request_output_text(req, i, text, sizeof text, &need));
        EXPECT(strchr(text, '.') == NULL, "output %d holds the stop: %s", i, text);
        tilt_output_info info;
        memset(&info, 0, sizeof info);
        info.struct_size = sizeof info;
        OK(tilt_request_output_info(req, i, &info));
        stopped += info.finish == TILT_FINISH_STOP;
    }
    EXPECT(stopped > 0, "no output ended at its stop");
    OK(tilt_request_free(req));

    tilt_request_options old = options(TILT_STRATEGY_SAMPLE, 8);
    old.struct_size = (uint32_t)offsetof(tilt_request_options, stop);
    OK(tilt_request_create(g_model, "Once upon a time", &old, NULL, NULL, &req));
    OK(tilt_request_free(req));
    OK(tilt_model_free(g_model));
    expect_no_live_handles();
}

static void sample_strategy(void) {
    if (!setup()) { g_failures++; return; }
    reward_log rl = { .runner = pthread_self() };
    tilt_reward * reward = NULL;
    tilt_request * req = NULL;
    OK(tilt_reward_create_callback(test_reward, &rl, NULL, &reward));
    tilt_request_options o = options(TILT_STRATEGY_SAMPLE, 20);
    o.samples = 4;
    OK(tilt_request_create(g_model, "Once upon a time", &o, reward, NULL, &req));
    stream_log sl = { 0 };
    OK(tilt_request_run(req, test_stream, &sl));
    int32_t count = 0;
    OK(tilt_request_output_count(req, &count));
    EXPECT(count == 4 && sl.done_events == 4 && rl.calls == 4, "%d outputs, %d done, %d reward calls", count,
           sl.done_events, rl.calls);
    for (int i = 0; i < count; i++) {
        tilt_output_info info = { .struct_size = sizeof info };
        OK(tilt_request_output_info(req, i, &info));
        char * text = output_text(req, i);
        EXPECT(info.index == i && info.has_reward && info.reward == count_e(text) && info.kl_method == TILT_KL_NONE,
               "output %d", i);
        free(text);
    }
    OK(tilt_request_free(req));
    OK(tilt_reward_free(reward));
    OK(tilt_model_free(g_model));
    expect_no_live_handles();
}

static void tokenwise(void) {
    if (!setup()) { g_failures++; return; }
    tilt_reward * reward = NULL;
    tilt_request * req = NULL;
    OK(tilt_reward_create_spec(NULL, "lexicon:sentiment", &reward));
    tilt_request_options o = options(TILT_STRATEGY_TOKENWISE, 16);
    o.tokenwise_top_k = 8;
    o.beta = 0.5;
    OK(tilt_request_create(g_model, "Once upon a time", &o, reward, NULL, &req));
    stream_log sl = { 0 };
    OK(tilt_request_run(req, test_stream, &sl));
    tilt_output_info info = { .struct_size = sizeof info };
    OK(tilt_request_output_info(req, 0, &info));
    EXPECT(info.kl_method == TILT_KL_STEP_DRIFT_SUM && info.kl >= 0 && isnan(info.kl_bound), "kl");
    EXPECT(sl.text_events == info.n_tokens, "%d text events for %d tokens", sl.text_events, info.n_tokens);
    OK(tilt_request_free(req));
    OK(tilt_reward_free(reward));
    OK(tilt_model_free(g_model));
    expect_no_live_handles();
}

/* Early rejection: fewer tokens than best-of-n on the same candidates, the best-of-n KL figures. */
static void rejection(void) {
    if (!setup()) { g_failures++; return; }
    tilt_reward * reward = NULL;
    OK(tilt_reward_create_spec(NULL, "lexicon:sentiment", &reward));
    tilt_request_options o = options(TILT_STRATEGY_REJECTION, 32);
    o.n = 8;
    o.alpha = 0.5;
    o.every = 8;
    tilt_request_options b = options(TILT_STRATEGY_BEST_OF_N, 32);
    b.n = 8;
    tilt_request * rej = NULL, * bon = NULL;
    OK(tilt_request_create(g_model, "Once upon a time", &o, reward, NULL, &rej));
    OK(tilt_request_create(g_model, "Once upon a time", &b, reward, NULL, &bon));
    OK(tilt_request_run(rej, NULL, NULL));
    OK(tilt_request_run(bon, NULL, NULL));
    tilt_output_info ri = { .struct_size = sizeof ri }, bi = { .struct_size = sizeof bi };
    OK(tilt_request_output_info(rej, 0, &ri));
    OK(tilt_request_output_info(bon, 0, &bi));
    EXPECT(ri.kl_method == TILT_KL_BON_ESTIMATE && ri.kl_bound_method == TILT_KL_BON_BOUND && ri.kl_bound == bi.kl_bound,
           "rejection KL: method %d, bound %g vs %g", ri.kl_method, ri.kl_bound, bi.kl_bound);
    EXPECT(ri.tokens_evaluated < bi.tokens_evaluated, "rejection decoded %lld tokens, best-of-8 %lld",
           (long long)ri.tokens_evaluated, (long long)bi.tokens_evaluated);
    OK(tilt_request_free(rej));
    OK(tilt_request_free(bon));
    OK(tilt_reward_free(reward));
    OK(tilt_model_free(g_model));
    expect_no_live_handles();
}

/* API 1.4: beam search keeps `beams` of k blocks per step; a 1.3-sized struct (without beams) gets beams = 2, and
 * beams > k is refused naming the field. */
static void beam_search(void) {
    if (!setup()) { g_failures++; return; }
    tilt_reward * reward = NULL;
    OK(tilt_reward_create_spec(NULL, "lexicon:sentiment", &reward));
    tilt_request_options o = options(TILT_STRATEGY_BEAM, 32);
    EXPECT(o.beams == 2 && o.reserved3 == 0, "beam defaults: beams %d", o.beams);
    o.k = 4;
    tilt_request_options old = o;
    old.struct_size = (uint32_t)offsetof(tilt_request_options, beams);
    old.beams = 3; /* beyond the 1.3 struct: not read */
    tilt_request * req = NULL, * earlier = NULL;
    OK(tilt_request_create(g_model, "Once upon a time", &o, reward, NULL, &req));
    OK(tilt_request_create(g_model, "Once upon a time", &old, reward, NULL, &earlier));
    OK(tilt_request_run(req, NULL, NULL));
    OK(tilt_request_run(earlier, NULL, NULL));
    tilt_output_info info = { .struct_size = sizeof info };
    OK(tilt_request_output_info(req, 0, &info));
    EXPECT(info.kl_method == TILT_KL_BLOCK_ESTIMATE && info.kl_bound_method == TILT_KL_BLOCK_BOUND &&
           info.n_tokens >= 1 && info.n_tokens <= 32, "beam KL method %d, %d tokens", info.kl_method, info.n_tokens);
    char * a = output_text(req, 0), * b = output_text(earlier, 0);
    EXPECT(a && b && strcmp(a, b) == 0, "a 1.3 struct gets beams = 2: '%s' vs '%s'", a ? a : "", b ? b : "");
    free(a);
    free(b);
    OK(tilt_request_free(req));
    OK(tilt_request_free(earlier));
    o.beams = 5;
    req = NULL;
    EXPECT_STATUS(tilt_request_create(g_model, "Once upon a time", &o, reward, NULL, &req), TILT_ERR_INVALID_ARGUMENT);
    EXPECT(req == NULL && strstr(tilt_last_error(), "tilt_request_options.beams") != NULL, "message: %s", tilt_last_error());
    OK(tilt_reward_free(reward));
    OK(tilt_model_free(g_model));
    expect_no_live_handles();
}

static void shutdown_frees_everything(void) {
    if (!setup()) { g_failures++; return; }
    tilt_reward * reward = NULL;
    tilt_request * req = NULL;
    OK(tilt_reward_create_spec(NULL, "length:10", &reward));
    tilt_request_options o = options(TILT_STRATEGY_BLOCKWISE, 8);
    OK(tilt_request_create(g_model, "Once", &o, reward, NULL, &req));
    int64_t live = 0;
    OK(tilt_runtime_live_handles(&live));
    EXPECT(live == 3, "%lld live", (long long)live);
    OK(tilt_runtime_shutdown());
    EXPECT_STATUS(tilt_request_run(req, NULL, NULL), TILT_ERR_NOT_INITIALIZED);
    OK(tilt_runtime_init(NULL));
    EXPECT_STATUS(tilt_request_run(req, NULL, NULL), TILT_ERR_INVALID_HANDLE); /* handles died with the shutdown */
    EXPECT_STATUS(tilt_model_free(g_model), TILT_ERR_INVALID_HANDLE);
    expect_no_live_handles();
    OK(tilt_model_load(NULL, NULL, &g_model)); /* and the engine works again */
    OK(tilt_model_free(g_model));
}

/* The same seed gives the same text on the CPU kernels and on the CUDA kernels (when a CUDA device exists). */
static void backend_parity(void) {
    OK(tilt_runtime_init(NULL));
    tilt_model_options cpu_options = tilt_model_default_options(), cuda_options = tilt_model_default_options();
    cpu_options.backend = TILT_BACKEND_CPU;
    cuda_options.backend = TILT_BACKEND_CUDA;
    tilt_model * cpu = NULL, * cuda = NULL;
    OK(tilt_model_load(NULL, &cpu_options, &cpu));
    tilt_status s = tilt_model_load(NULL, &cuda_options, &cuda);
    if (s == TILT_ERR_UNSUPPORTED) {
        printf("no CUDA device: nothing to compare (%s)\n", tilt_last_error());
        OK(tilt_model_free(cpu));
        return;
    }
    EXPECT(s == TILT_OK, "%s: %s", tilt_status_name(s), tilt_last_error());
    tilt_reward * reward = NULL;
    OK(tilt_reward_create_spec(NULL, "lexicon:sentiment", &reward));
    for (int32_t strategy = TILT_STRATEGY_SAMPLE; strategy <= TILT_STRATEGY_BLOCKWISE; strategy++) {
        tilt_request_options o = options(strategy, 48);
        tilt_request * a = NULL, * b = NULL;
        OK(tilt_request_create(cpu, "Once upon a time", &o, reward, NULL, &a));
        OK(tilt_request_create(cuda, "Once upon a time", &o, reward, NULL, &b));
        OK(tilt_request_run(a, NULL, NULL));
        OK(tilt_request_run(b, NULL, NULL));
        char * ta = output_text(a, 0), * tb = output_text(b, 0);
        printf("strategy %d\n  cpu:  %s\n  cuda: %s\n", strategy, ta ? ta : "(null)", tb ? tb : "(null)");
        EXPECT(ta && tb && strcmp(ta, tb) == 0, "strategy %d: the backends disagree", strategy);
        free(ta);
        free(tb);
        OK(tilt_request_free(a));
        OK(tilt_request_free(b));
    }
    OK(tilt_reward_free(reward));
    OK(tilt_model_free(cpu));
    OK(tilt_model_free(cuda));
    expect_no_live_handles();
}

/* ---- driver -------------------------------------------------------------------------------------------------- */

typedef struct test_case {
    const char * name;
    void (*run)(void);
} test_case;

static const test_case cases[] = {
    { "api_version", api_version }, { "not_initialized", not_initialized }, { "init_errors", init_errors },
    { "happy_path_blockwise", happy_path_blockwise }, { "best_of_n_steering", best_of_n_steering },
    { "invalid_handles", invalid_handles }, { "invalid_arguments", invalid_arguments },
    { "buffer_too_small", buffer_too_small }, { "callback_errors", callback_errors },
    { "model_load_errors", model_load_errors }, { "engine_errors", engine_errors },
    { "unsupported_backend", unsupported_backend }, { "bad_state", bad_state },
    { "cancel_from_thread", cancel_from_thread }, { "cancel_from_stream", cancel_from_stream },
    { "cancel_before_run", cancel_before_run }, { "free_while_running", free_while_running },
    { "deadline", deadline }, { "concurrent_runs", concurrent_runs }, { "rejection", rejection }, { "sample_strategy", sample_strategy },
    { "stop_sequences", stop_sequences },
    { "tokenwise", tokenwise }, { "beam_search", beam_search }, { "shutdown_frees_everything", shutdown_frees_everything },
    { "backend_parity", backend_parity },
};

int main(int argc, char ** argv) {
    const char * which = argc > 1 ? argv[1] : "all";
    int ran = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        if (strcmp(which, "all") != 0 && strcmp(which, cases[i].name) != 0) continue;
        int before = g_failures;
        double start = now_ms();
        cases[i].run();
        tilt_runtime_shutdown(); /* for "all": the next case starts uninitialized (the runtime stays loaded) */
        printf("%s %s (%.0f ms)\n", g_failures == before ? "PASS" : "FAIL", cases[i].name, now_ms() - start);
        ran++;
    }
    if (ran == 0) {
        fprintf(stderr, "unknown case '%s'\n", which);
        return 2;
    }
    tilt_runtime_shutdown();
    return g_failures == 0 ? 0 : 1;
}
