"""Tests of libtilt from Python through ctypes: the happy path with a Python reward, steering, errors, cancellation,
trained heads. Run by ctest (python.tests) with TILT_LIB and TILT_INTEROP_DIR set; by hand:
    TILT_LIB=native/build/tilt/libtilt.so python3 native/python/test_tilt.py
"""
import ctypes as C
import hashlib
import json
import math
import os
import pathlib
import struct
import sys
import tempfile
import threading
import time
import unittest

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parents[1]
lib = C.CDLL(os.environ.get("TILT_LIB") or str(HERE.parent / "build/tilt/libtilt.so"))
I32, F32, F64 = C.c_int32, C.c_float, C.c_double

OK, INVALID_ARGUMENT, INVALID_HANDLE, BUFFER_TOO_SMALL = 0, -1, -2, -3
MODEL_LOAD, CALLBACK, CANCELLED = -6, -8, -9
SAMPLE, BEST_OF_N, TOKENWISE, BLOCKWISE, BEAM = 0, 1, 2, 3, 7
KL_BLOCK_ESTIMATE = 5
EVENT_TEXT, EVENT_OUTPUT_DONE = 1, 4


def fields(ctype, names):
    return [(name, ctype) for name in names.split()]


class RequestOptions(C.Structure):
    _fields_ = fields(I32, "struct_size strategy samples max_tokens n k block_size selection tokenwise_top_k top_k") + \
        [("temperature", F32), ("top_p", F32), ("threads", I32), ("request_id", C.c_uint32), ("beta", F64),
         ("seed", C.c_uint64), ("deadline_ms", C.c_int64),
         ("alpha", F64), ("every", I32), ("reserved", I32),
         ("stop", C.c_void_p), ("stop_token_ids", C.c_void_p), ("n_stop", I32), ("n_stop_token_ids", I32),
         ("include_stop", I32), ("reserved2", I32),  # API 1.2
         ("lambda_", F64), ("continuation", C.c_char_p), ("logprobs", I32), ("top_logprobs", I32),  # API 1.3
         ("beams", I32), ("reserved3", I32)]  # API 1.4


class Event(C.Structure):
    _fields_ = fields(I32, "struct_size kind sample step n_tokens n_scores chosen live_sequences") + \
        [("text", C.c_char_p), ("tokens", C.POINTER(I32)), ("scores", C.POINTER(F64)), ("text_len", C.c_size_t)] + \
        fields(F64, "running_kl reward kl") + fields(I32, "finish reserved")


class OutputInfo(C.Structure):
    _fields_ = fields(I32, "struct_size index finish n_tokens kl_method kl_bound_method decode_calls has_reward") + \
        fields(F64, "reward logprob kl kl_bound win_rate") + [("tokens_evaluated", C.c_int64)] + \
        fields(F64, "prefill_ms first_text_ms total_ms")


class ModelInfo(C.Structure):
    _fields_ = fields(I32, "struct_size vocab_size hidden_size context_size is_tabular reserved")


REWARD_FN = C.CFUNCTYPE(I32, C.c_void_p, C.c_char_p, C.c_char_p, I32, C.POINTER(F64))
STREAM_FN = C.CFUNCTYPE(I32, C.c_void_p, C.POINTER(Event))
P = C.c_void_p
lib.tilt_api_version.restype = C.c_uint32
lib.tilt_last_error.restype = C.c_char_p
lib.tilt_request_default_options.restype = RequestOptions
lib.tilt_model_load.argtypes = [C.c_char_p, P, C.POINTER(P)]
lib.tilt_reward_create_callback.argtypes = [REWARD_FN, P, C.c_char_p, C.POINTER(P)]
lib.tilt_reward_create_spec.argtypes = [P, C.c_char_p, C.POINTER(P)]
lib.tilt_request_create.argtypes = [P, C.c_char_p, C.POINTER(RequestOptions), P, P, C.POINTER(P)]
lib.tilt_request_run.argtypes = [P, STREAM_FN, P]
lib.tilt_request_output_text.argtypes = [P, I32, C.c_char_p, C.c_size_t, C.POINTER(C.c_size_t)]
for name in ("tilt_model_free", "tilt_reward_free", "tilt_value_free", "tilt_request_free", "tilt_request_cancel"):
    getattr(lib, name).argtypes = [P]
NO_STREAM = STREAM_FN()


def check(status):
    if status != OK:
        raise AssertionError(f"status {status}: {lib.tilt_last_error().decode()}")


def last_error():
    return lib.tilt_last_error().decode()


def options(strategy, max_tokens, **values):
    o = lib.tilt_request_default_options()
    o.strategy, o.max_tokens, o.seed = strategy, max_tokens, 7
    for key, value in values.items():
        setattr(o, key, value)
    return o


def count_e(text):
    return float(text.count("e"))


class PythonReward:
    """A Python reward as a tilt_reward_fn; remembers every call."""

    def __init__(self, score=count_e):
        self.score, self.calls, self.threads, self.error = score, [], set(), None

        @REWARD_FN
        def fn(user_data, prompt, text, finished, out_reward):
            self.threads.add(threading.get_ident())
            value = self.score(text.decode())
            self.calls.append((text.decode(), bool(finished), value))
            out_reward[0] = value
            return 0

        self.fn = fn  # keep the ctypes thunk alive as long as the reward can be called


def default_model_path():
    env = os.environ.get("TILT_MODEL")
    return pathlib.Path(env) if env else REPO.parent / "shared" / "models" / "stories260K.gguf"


class TiltTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        check(lib.tilt_runtime_init(None))
        cls.model = P()
        check(lib.tilt_model_load(None, None, C.byref(cls.model)))

    @classmethod
    def tearDownClass(cls):
        check(lib.tilt_model_free(cls.model))
        live = C.c_int64(-1)
        check(lib.tilt_runtime_live_handles(C.byref(live)))
        assert live.value == 0, f"{live.value} handles leaked"
        check(lib.tilt_runtime_shutdown())

    def setUp(self):
        self.handles = []

    def tearDown(self):
        for free, handle in reversed(self.handles):
            check(free(handle))

    def reward(self, python_reward):
        handle = P()
        check(lib.tilt_reward_create_callback(python_reward.fn, None, b"python", C.byref(handle)))
        self.handles.append((lib.tilt_reward_free, handle))
        return handle

    def request(self, opts, reward, value=None, prompt=b"Once upon a time"):
        handle = P()
        check(lib.tilt_request_create(self.model, prompt, C.byref(opts), reward, value, C.byref(handle)))
        self.handles.append((lib.tilt_request_free, handle))
        return handle

    def text(self, request, index=0):
        need = C.c_size_t()
        self.assertEqual(lib.tilt_request_output_text(request, index, None, 0, C.byref(need)), BUFFER_TOO_SMALL)
        buf = C.create_string_buffer(need.value)
        check(lib.tilt_request_output_text(request, index, buf, need, C.byref(need)))
        return buf.value.decode()

    def info(self, request, index=0):
        info = OutputInfo(struct_size=C.sizeof(OutputInfo))
        check(lib.tilt_request_output_info(request, index, C.byref(info)))
        return info

    def test_api_version(self):
        self.assertEqual(lib.tilt_api_version() >> 16, 1)
        check(lib.tilt_runtime_ping())

    def test_blockwise_with_python_reward(self):
        python_reward = PythonReward()
        request = self.request(options(BLOCKWISE, 48, k=4, block_size=8), self.reward(python_reward))
        streamed, done = [], []

        @STREAM_FN
        def on_event(user_data, event):
            if event.contents.kind == EVENT_TEXT:
                streamed.append(event.contents.text.decode())
            elif event.contents.kind == EVENT_OUTPUT_DONE:
                done.append(event.contents.reward)
            return 0

        check(lib.tilt_request_run(request, on_event, None))
        text, info = self.text(request), self.info(request)
        self.assertEqual("".join(streamed), text)
        self.assertEqual(info.reward, count_e(text))
        self.assertEqual(done, [info.reward])
        self.assertTrue(0 <= info.kl <= info.kl_bound + 1e-9 and 1 <= info.n_tokens <= 48)
        self.assertTrue(any(not finished for _, finished, _ in python_reward.calls), "prefixes were valued")
        self.assertEqual(python_reward.threads, {threading.get_ident()}, "callbacks run on the calling thread")

    def test_best_of_n_winner_has_highest_python_reward(self):
        python_reward = PythonReward()
        request = self.request(options(BEST_OF_N, 40, n=8), self.reward(python_reward))
        check(lib.tilt_request_run(request, NO_STREAM, None))
        text, info = self.text(request), self.info(request)
        self.assertEqual(len(python_reward.calls), 8)
        self.assertEqual(info.reward, max(value for _, _, value in python_reward.calls))
        self.assertEqual(count_e(text), info.reward)

    def test_python_exception_in_reward_is_a_callback_error(self):
        def broken(text):
            raise ValueError("no score")

        request = self.request(options(BEST_OF_N, 8), self.reward(PythonReward(broken)))
        # ctypes reports the exception through sys.unraisablehook and returns 0, leaving the reward NaN.
        raised, hook = [], sys.unraisablehook
        sys.unraisablehook = lambda unraisable: raised.append(unraisable.exc_value)
        try:
            self.assertEqual(lib.tilt_request_run(request, NO_STREAM, None), CALLBACK)
        finally:
            sys.unraisablehook = hook
        self.assertIn("non-finite", last_error())
        self.assertTrue(raised and isinstance(raised[0], ValueError))

    def test_nan_reward_is_a_callback_error(self):
        request = self.request(options(BLOCKWISE, 8), self.reward(PythonReward(lambda text: math.nan)))
        self.assertEqual(lib.tilt_request_run(request, NO_STREAM, None), CALLBACK)

    def test_cancel_from_another_python_thread(self):
        reward = P()
        check(lib.tilt_reward_create_spec(None, b"lexicon:sentiment", C.byref(reward)))
        self.handles.append((lib.tilt_reward_free, reward))
        request = self.request(options(BLOCKWISE, 64, samples=1000), reward)
        timer = threading.Timer(0.3, lambda: check(lib.tilt_request_cancel(request)))
        start = time.monotonic()
        timer.start()
        self.assertEqual(lib.tilt_request_run(request, NO_STREAM, None), CANCELLED)
        timer.join()
        self.assertLess(time.monotonic() - start, 10)

    def test_beam_search_with_python_reward(self):
        defaults = lib.tilt_request_default_options()
        self.assertEqual((defaults.struct_size, defaults.beams), (C.sizeof(RequestOptions), 2), "the mirror is tilt.h's")
        python_reward = PythonReward()
        reward = self.reward(python_reward)
        request = self.request(options(BEAM, 32, k=4, block_size=8, beams=2), reward)
        check(lib.tilt_request_run(request, NO_STREAM, None))
        text, info = self.text(request), self.info(request)
        self.assertEqual(info.kl_method, KL_BLOCK_ESTIMATE)
        self.assertTrue(1 <= info.n_tokens <= 32 and text)
        self.assertTrue(any(not finished for _, finished, _ in python_reward.calls), "prefixes were valued")
        handle = P()
        self.assertEqual(lib.tilt_request_create(self.model, b"x", C.byref(options(BEAM, 8, k=2, beams=3)), reward, None,
                                                 C.byref(handle)), INVALID_ARGUMENT)
        self.assertIn("tilt_request_options.beams", last_error())

    def test_misuse_is_an_error_status(self):
        reward = self.reward(PythonReward())
        handle = P()
        self.assertEqual(lib.tilt_request_create(self.model, b"bad \xff utf-8", C.byref(options(BLOCKWISE, 8)), reward,
                                                 None, C.byref(handle)), INVALID_ARGUMENT)
        self.assertIn("UTF-8", last_error())
        wrong = options(BLOCKWISE, 8)
        wrong.struct_size = 40
        self.assertEqual(lib.tilt_request_create(self.model, b"x", C.byref(wrong), reward, None, C.byref(handle)),
                         INVALID_ARGUMENT)
        freed = P()
        check(lib.tilt_request_create(self.model, b"x", C.byref(options(BLOCKWISE, 8)), reward, None, C.byref(freed)))
        check(lib.tilt_request_free(freed))
        self.assertEqual(lib.tilt_request_run(freed, NO_STREAM, None), INVALID_HANDLE)
        self.assertEqual(lib.tilt_request_free(freed), INVALID_HANDLE)
        self.assertEqual(lib.tilt_request_run(P(0xDEAD0), NO_STREAM, None), INVALID_HANDLE)

    def write_head(self, directory, role, fingerprint, hidden):
        """A linear head (tilt-head/1) over the final hidden state: h . w + b with w = 0.01, b = 0."""
        header = json.dumps({"format": "tilt-head/1", "kind": "linear", "role": role, "modelFingerprint": fingerprint,
                             "hiddenSize": hidden}).encode()
        path = pathlib.Path(directory) / f"{role}-{fingerprint[-6:]}.head"
        path.write_bytes(b"TILTHEAD" + struct.pack("<i", len(header)) + header +
                         struct.pack(f"<{hidden + 1}f", *([0.01] * hidden + [0.0])))
        return str(path).encode()

    def test_trained_heads(self):
        info = ModelInfo(struct_size=C.sizeof(ModelInfo))
        check(lib.tilt_model_get_info(self.model, C.byref(info)))
        fingerprint = "sha256:" + hashlib.sha256(default_model_path().read_bytes()).hexdigest()
        with tempfile.TemporaryDirectory() as directory:
            value, head_reward = P(), P()
            check(lib.tilt_value_load_head(self.model, self.write_head(directory, "value", fingerprint, info.hidden_size),
                                           C.byref(value)))
            self.handles.append((lib.tilt_value_free, value))
            check(lib.tilt_reward_load_head(self.model, self.write_head(directory, "reward", fingerprint, info.hidden_size),
                                            C.byref(head_reward)))
            self.handles.append((lib.tilt_reward_free, head_reward))
            other = self.write_head(directory, "value", "sha256:" + "0" * 64, info.hidden_size)
            self.assertEqual(lib.tilt_value_load_head(self.model, other, C.byref(P())), MODEL_LOAD)
            self.assertIn("trained on model", last_error())

        python_reward = PythonReward()
        request = self.request(options(BLOCKWISE, 24, k=4), self.reward(python_reward), value)
        check(lib.tilt_request_run(request, NO_STREAM, None))
        # The head values the unfinished blocks; the reward sees only finished blocks and the returned output.
        unfinished = {text for text, finished, _ in python_reward.calls if not finished}
        self.assertLessEqual(unfinished, {self.text(request)})
        request = self.request(options(BEST_OF_N, 16), head_reward)
        check(lib.tilt_request_run(request, NO_STREAM, None))
        self.assertTrue(math.isfinite(self.info(request).reward))


if __name__ == "__main__":
    unittest.main(verbosity=2)
