import pytest
from pmon3.ipc import protocol


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


def test_oversized_message_is_refused():
    with pytest.raises(protocol.ProtocolError):
        protocol.decode(b" " * 100, limit=10)


def test_bad_frame_header_is_refused():
    with pytest.raises(protocol.ProtocolError):
        protocol.Reassembler().feed(b"XX" + b"\0" * 30)
