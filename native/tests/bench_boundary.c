/* The cost of one call across the C -> .NET boundary: the median over batches of tilt_runtime_ping (a managed
 * export that does nothing) and, for scale, of a call that validates a handle (tilt_model_get_info) and of the
 * pure-C tilt_api_version. Prints nanoseconds per call. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "tilt.h"

enum { BATCHES = 201, CALLS = 20000 };

static double now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static int compare(const void * a, const void * b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static volatile uint32_t sink;

/* kind 0: tilt_runtime_ping, 1: tilt_model_get_info, 2: tilt_api_version */
static double median_ns(int kind, tilt_model * model) {
    static double per_call[BATCHES];
    tilt_model_info info = { .struct_size = sizeof info };
    for (int b = 0; b < BATCHES; b++) {
        double start = now_ns();
        for (int i = 0; i < CALLS; i++) {
            if (kind == 0) sink += (uint32_t)tilt_runtime_ping();
            else if (kind == 1) sink += (uint32_t)tilt_model_get_info(model, &info);
            else sink += tilt_api_version();
        }
        per_call[b] = (now_ns() - start) / CALLS;
    }
    qsort(per_call, BATCHES, sizeof per_call[0], compare);
    return per_call[BATCHES / 2];
}

int main(void) {
    tilt_model * model = NULL;
    tilt_status s = tilt_runtime_init(NULL);
    if (s == TILT_OK) s = tilt_model_load(NULL, NULL, &model);
    if (s != TILT_OK) {
        fprintf(stderr, "setup failed: %s: %s\n", tilt_status_name(s), tilt_last_error());
        return 1;
    }
    median_ns(0, model); /* warm-up: the first calls bind and JIT the exports */
    printf("tilt_runtime_ping (no-op across the boundary): %.1f ns/call (median of %d x %d calls)\n",
           median_ns(0, model), BATCHES, CALLS);
    printf("tilt_model_get_info (handle lookup + struct copy): %.1f ns/call\n", median_ns(1, model));
    printf("tilt_api_version (pure C, no crossing): %.1f ns/call\n", median_ns(2, model));
    tilt_model_free(model);
    tilt_runtime_shutdown();
    return sink == 0xFFFFFFFFu; /* keeps the calls from being optimized away */
}
