"""The official `openai` Python client sends pictures (`image_url` data URLs, the way it sends
them to any vision model) to `kaizen serve` running a local vision model (argv[1], served as
`tiny-vl`), and a text model (argv[2], `smollm2`) refuses a picture with HTTP 400."""
import base64
import struct
import sys
import zlib

import openai
from peer_check import check, finish


def png(width, height, rgb):
    """A plain-colour PNG, written with the standard library only."""
    raw = b"".join(b"\x00" + bytes(rgb) * width for _ in range(height))

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def picture(rgb):
    return "data:image/png;base64," + base64.b64encode(png(24, 24, rgb)).decode()


vision = openai.OpenAI(base_url=sys.argv[1], api_key="unused", max_retries=0, timeout=120)
text = openai.OpenAI(base_url=sys.argv[2], api_key="unused", max_retries=0, timeout=120)


def ask(client, model, rgb):
    content = [{"type": "text", "text": "Which colour is the picture?"},
               {"type": "image_url", "image_url": {"url": picture(rgb)}}]
    return client.chat.completions.create(model=model, messages=[{"role": "user", "content": content}],
                                          max_tokens=6, temperature=0, logprobs=True)


def the_picture_reaches_the_model():
    red, red_again, blue = ask(vision, "tiny-vl", (255, 0, 0)), ask(vision, "tiny-vl", (255, 0, 0)), ask(vision, "tiny-vl", (0, 0, 255))
    first = lambda r: r.choices[0].logprobs.content[0].logprob  # noqa: E731
    assert red.choices[0].finish_reason in ("stop", "length") and red.choices[0].logprobs.content
    plain = vision.chat.completions.create(model="tiny-vl", max_tokens=1, temperature=0, messages=[
        {"role": "user", "content": [{"type": "text", "text": "Which colour is the picture?"}]}])
    # The picture is 36 placeholder tokens of the prompt (24×24 in 4×4 patches).
    assert red.usage.prompt_tokens - plain.usage.prompt_tokens == 36, (red.usage, plain.usage)
    assert first(red) == first(red_again), (first(red), first(red_again))
    assert first(red) != first(blue), "a red and a blue picture gave the same numbers"


def a_text_model_refuses_a_picture():
    try:
        ask(text, "smollm2", (255, 0, 0))
        raise AssertionError("no error")
    except openai.BadRequestError as e:
        assert e.status_code == 400 and "text only" in str(e), str(e)


def a_corrupt_picture_is_a_clear_error():
    content = [{"type": "image_url", "image_url": {"url": "data:image/png;base64," + base64.b64encode(b"not a png").decode()}}]
    try:
        vision.chat.completions.create(model="tiny-vl", messages=[{"role": "user", "content": content}], max_tokens=2)
        raise AssertionError("no error")
    except openai.BadRequestError as e:
        assert e.status_code == 400 and "picture" in str(e), str(e)


for name, fn in [("the picture reaches the local vision model", the_picture_reaches_the_model),
                 ("a text model refuses a picture", a_text_model_refuses_a_picture),
                 ("a corrupt picture is a clear error", a_corrupt_picture_is_a_clear_error)]:
    check(name, fn)
finish()
