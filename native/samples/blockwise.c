/* Blockwise controlled decoding on the default model, steered by a reward written in C. */
#include <stdio.h>
#include <string.h>

#include "tilt.h"

/* The reward: +1 for every happy word in the text (called for whole candidates and, as the value, for prefixes). */
static int32_t happy_words(void * user_data, const char * prompt, const char * text, int32_t finished, double * out) {
    static const char * const words[] = { "happy", "smile", "fun", "love", "friend", "play" };
    (void)user_data, (void)prompt, (void)finished;
    double score = 0;
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++)
        for (const char * p = text; (p = strstr(p, words[i])) != NULL; p++) score += 1;
    *out = score;
    return 0; /* non-zero would fail the request with TILT_ERR_CALLBACK */
}

/* Streams every accepted block as it is chosen. */
static int32_t print_text(void * user_data, const tilt_event * ev) {
    (void)user_data;
    if (ev->kind == TILT_EVENT_TEXT) fputs(ev->text, stdout), fflush(stdout);
    return 0; /* non-zero would cancel the run */
}

#define CHECK(call) do { tilt_status s_ = (call); if (s_ != TILT_OK) { \
    fprintf(stderr, "%s: %s: %s\n", #call, tilt_status_name(s_), tilt_last_error()); goto done; } } while (0)

int main(int argc, char ** argv) {
    tilt_model * model = NULL;
    tilt_reward * reward = NULL;
    tilt_request * request = NULL;
    int rc = 1;
    CHECK(tilt_runtime_init(NULL));
    CHECK(tilt_model_load(argc > 1 ? argv[1] : NULL, NULL, &model)); /* NULL: $TILT_MODEL or stories260K */
    CHECK(tilt_reward_create_callback(happy_words, NULL, "happy-words", &reward));

    tilt_request_options opts = tilt_request_default_options();
    opts.strategy = TILT_STRATEGY_BLOCKWISE;
    opts.k = 8;          /* candidate blocks per step */
    opts.block_size = 8; /* tokens per block */
    opts.max_tokens = 96;
    opts.seed = 1;
    const char * prompt = "Once upon a time";
    CHECK(tilt_request_create(model, prompt, &opts, reward, NULL, &request));
    fputs(prompt, stdout);
    CHECK(tilt_request_run(request, print_text, NULL));

    tilt_output_info info = { .struct_size = sizeof info };
    CHECK(tilt_request_output_info(request, 0, &info));
    printf("\n[reward %.2f, KL %.3f (bound %.3f), %d tokens, %.0f ms]\n", info.reward, info.kl, info.kl_bound,
           info.n_tokens, info.total_ms);
    rc = 0;
done:
    tilt_request_free(request); /* each free accepts NULL */
    tilt_reward_free(reward);
    tilt_model_free(model);
    tilt_runtime_shutdown();
    return rc;
}
