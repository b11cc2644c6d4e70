import pytest
from pmon3.ipc import protocol, transport


def test_frames_round_trip_through_the_reassembler():
    msg = protocol.ok("ab" * 16, {"x": "y" * 50_000})
    payload = protocol.encode(msg)
    frames = protocol.frames(msg["id"], payload, 8192)
    assert len(frames) > 1 and all(len(f) <= 8192 for f in frames)
    r = protocol.Reassembler()
    results = [r.feed(f) for f in reversed(frames)]  # order must not matter
    assert results[:-1] == [None] * (len(frames) - 1)
    assert protocol.decode(results[-1]) == msg


def test_interleaved_messages_are_kept_apart():
    a = protocol.encode(protocol.ok("aa" * 16, "A" * 20_000))
    b = protocol.encode(protocol.ok("bb" * 16, "B" * 20_000))
    fa, fb = protocol.frames("aa" * 16, a, 4096), protocol.frames("bb" * 16, b, 4096)
    r = protocol.Reassembler()
    out = [r.feed(f) for pair in zip(fa, fb) for f in pair]
    done = [x for x in out if x is not None]
    assert sorted(done) == sorted([a, b])


@pytest.mark.parametrize("data", [b"not json", b"[1]", b'{"id": 1}', b'{"id": "x", "v": 99}'])
def test_malformed_messages_raise_protocol_error(data):
    with pytest.raises(protocol.ProtocolError):
        protocol.decode(data)


REPLIES = [
    protocol.ok("ab" * 16, [{"name": 'x"y\\z\u00e9\u2028\x1b[31m', "data": {"data": [1.5, None, True]}}, []]),
    {**protocol.ok("ab" * 16, {"k": "v"}), "warnings": ['"data":1']},
    {"v": 1, "id": "ab" * 16, "warnings": ["w"], "data": 7, "ok": True},
    protocol.ok("ab" * 16, None),
    protocol.error("ab" * 16, "not_found", 'no "data" here'),
]


@pytest.mark.parametrize("reply", REPLIES)
def test_raw_data_is_pmonds_text_and_the_rest_as_decode_gives_it(reply):
    import json

    payload = protocol.encode(reply)
    msg, text = transport.decode_raw_data(payload)
    whole = protocol.decode(payload)
    if "data" in reply:
        assert text == json.dumps(whole.pop("data"), separators=(",", ":"))
    else:
        assert text is None
    assert msg == whole


def test_raw_data_of_escaped_names_still_comes_out():
    import json

    payload = b'{"v":1,"id":"x","ok":true,"d\\u0061ta":[1,2]}'  # the scan does not match escaped names
    msg, text = transport.decode_raw_data(payload)
    assert (msg, json.loads(text or "")) == ({"v": 1, "id": "x", "ok": True}, [1, 2])


@pytest.mark.parametrize(
    "data", [b"not json", b"[1]", b'{"id": "x", "v": 99, "data": 1}', b'{"v":1,"data":[1,2', b"\xff", b'{"data":1}']
)
def test_raw_data_of_malformed_messages_raises_protocol_error(data):
    with pytest.raises(protocol.ProtocolError):
        transport.decode_raw_data(data)


def test_oversized_message_is_refused():
    with pytest.raises(protocol.ProtocolError):
        protocol.decode(b" " * 100, limit=10)


def test_bad_frame_header_is_refused():
    with pytest.raises(protocol.ProtocolError):
        protocol.Reassembler().feed(b"XX" + b"\0" * 30)


def test_protocol_doc_matches_the_message_types():
    from pathlib import Path

    from pmon3.ipc import messages

    doc = (Path(__file__).parents[2] / "docs" / "protocol.md").read_text()
    generated = doc.split("<!-- generated: python -m pmon3.ipc.messages -->\n", 1)[1].split("<!-- end generated -->")[0]
    assert generated == messages.describe(), "docs/protocol.md is stale: python -m pmon3.ipc.messages"


def test_requests_are_checked_against_their_types():
    import pytest
    from pmon3.errors import InvalidRequestError
    from pmon3.ipc import messages

    assert messages.StopRequest.parse({"id": "api", "force": True}) == messages.StopRequest("api", True)
    for bad in ({"id": 3}, {"id": "api", "force": "yes"}, {"force": True}, {"id": "a", "extra": 1}):
        with pytest.raises(InvalidRequestError):
            messages.StopRequest.parse(bad)
    req = messages.ExecRequest.parse({"file": "/bin/true", "args": ["-x"], "success_exit_codes": [0, 2]})
    assert req.args == ["-x"] and req.success_exit_codes == [0, 2]
    with pytest.raises(InvalidRequestError, match="success_exit_codes"):
        messages.ExecRequest.parse({"file": "/bin/true", "success_exit_codes": [True]})
    assert set(messages.BY_CMD) >= {"exec", "list", "desc", "stop", "restart", "del", "group_restart"}
    assert not set(messages.BY_CMD) & {"run", "ls", "show", "start", "delete", "order", "log", "logf", "ping"}


def test_reply_records_are_messages_names_made_on_first_use():
    import subprocess
    import sys

    from pmon3.ipc import messages, records

    made = {k for k, v in vars(records).items() if isinstance(v, type) and v.__module__ == records.__name__}
    assert made == messages.RECORDS
    assert all(getattr(messages, name) is getattr(records, name) for name in made)
    with pytest.raises(AttributeError):
        messages.NoSuchRecord  # noqa: B018
    # the CLI's client does not make them (TypedDicts cost ~2 ms to create)
    code = "import sys, pmon3.client; print('pmon3.ipc.records' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "False"


def test_frame_header_layout_is_the_wire_format():
    import struct

    payload = b"x" * 5000
    frames = protocol.frames("ab" * 16, payload, 2048)
    for i, f in enumerate(frames):
        assert struct.Struct("!2sBHH16s").unpack_from(f) == (b"P3", 1, i, len(frames), bytes.fromhex("ab" * 16))
    assert protocol.FRAME_HEADER == struct.calcsize("!2sBHH16s")
    assert b"".join(f[protocol.FRAME_HEADER :] for f in frames) == payload
