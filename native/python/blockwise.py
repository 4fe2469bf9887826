"""Blockwise controlled decoding on the default model, steered by a reward written in Python (ctypes + libtilt)."""
import ctypes as C, os, pathlib

lib = C.CDLL(os.environ.get("TILT_LIB") or str(pathlib.Path(__file__).resolve().parents[1] / "build/tilt/libtilt.so"))
I32, F64 = C.c_int32, C.c_double

def fields(ctype, names):
    return [(name, ctype) for name in names.split()]

class RequestOptions(C.Structure):  # tilt_request_options
    _fields_ = fields(I32, "struct_size strategy samples max_tokens n k block_size selection tokenwise_top_k top_k") + \
        [("temperature", C.c_float), ("top_p", C.c_float), ("threads", I32), ("request_id", C.c_uint32),
         ("beta", F64), ("seed", C.c_uint64), ("deadline_ms", C.c_int64),
         ("alpha", F64), ("every", I32), ("reserved", I32),
         ("stop", C.c_void_p), ("stop_token_ids", C.c_void_p), ("n_stop", I32), ("n_stop_token_ids", I32),
         ("include_stop", I32), ("reserved2", I32),  # API 1.2
         ("lambda_", F64), ("continuation", C.c_char_p), ("logprobs", I32), ("top_logprobs", I32),  # API 1.3
         ("beams", I32), ("reserved3", I32)]  # API 1.4

class Event(C.Structure):  # the leading fields of tilt_event: enough to read a text event
    _fields_ = fields(I32, "struct_size kind sample step n_tokens n_scores chosen live_sequences") + [("text", C.c_char_p)]

class OutputInfo(C.Structure):  # tilt_output_info
    _fields_ = fields(I32, "struct_size index finish n_tokens kl_method kl_bound_method decode_calls has_reward") + \
        fields(F64, "reward logprob kl kl_bound win_rate") + [("tokens_evaluated", C.c_int64)] + \
        fields(F64, "prefill_ms first_text_ms total_ms")

lib.tilt_request_default_options.restype = RequestOptions
lib.tilt_last_error.restype = C.c_char_p
HAPPY = ("happy", "smile", "fun", "love", "friend", "play")

@C.CFUNCTYPE(I32, C.c_void_p, C.c_char_p, C.c_char_p, I32, C.POINTER(F64))
def happy_words(user_data, prompt, text, finished, out_reward):  # +1 per happy word, for texts and prefixes
    out_reward[0] = float(sum(text.decode().count(word) for word in HAPPY))
    return 0  # non-zero (or an exception, which leaves the reward NaN) fails the request with TILT_ERR_CALLBACK

@C.CFUNCTYPE(I32, C.c_void_p, C.POINTER(Event))
def print_text(user_data, event):
    if event.contents.kind == 1:  # TILT_EVENT_TEXT: the accepted block
        print(event.contents.text.decode(errors="replace"), end="", flush=True)
    return 0  # non-zero cancels the run

def check(status):
    if status != 0:
        raise RuntimeError(f"tilt status {status}: {lib.tilt_last_error().decode()}")

model, reward, request = C.c_void_p(), C.c_void_p(), C.c_void_p()
check(lib.tilt_runtime_init(None))
check(lib.tilt_model_load(None, None, C.byref(model)))  # None: $TILT_MODEL, else ../shared/models/stories260K
check(lib.tilt_reward_create_callback(happy_words, None, b"happy-words", C.byref(reward)))
opts = lib.tilt_request_default_options()  # strategy blockwise, K = 8 blocks of M = 8 tokens
opts.max_tokens, opts.seed = 96, 1
prompt = "Once upon a time"
check(lib.tilt_request_create(model, prompt.encode(), C.byref(opts), reward, None, C.byref(request)))
print(prompt, end="")
check(lib.tilt_request_run(request, print_text, None))
info = OutputInfo(struct_size=C.sizeof(OutputInfo))
check(lib.tilt_request_output_info(request, 0, C.byref(info)))
print(f"\n[reward {info.reward:.2f}, KL {info.kl:.3f} (bound {info.kl_bound:.3f}), {info.n_tokens} tokens, {info.total_ms:.0f} ms]")
lib.tilt_runtime_shutdown()  # frees every handle (tilt_request_free, tilt_reward_free, tilt_model_free free one)
