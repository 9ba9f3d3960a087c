"""The signed envelope: values come back only from bytes this app signed."""
import hmac
import pickle

import pytest

from pyramid_beaker.codec import InvalidData, SignedCodec, Signer

SECRET = 'codec-test-secret'
VALUES = [1, 'é', None, [1, {'a': [True, 2.5]}], {'k': 'v' * 100}, '', 0]


@pytest.mark.parametrize('serializer', ['json', 'pickle'])
def test_loads_all_returns_what_loads_returns_one_by_one(serializer):
    codec = SignedCodec(serializer, SECRET, 'session')
    envelopes = [codec.dumps(value) for value in VALUES]
    values, stale = codec.loads_all_checked(envelopes)
    assert values == [codec.loads(raw) for raw in envelopes] == VALUES
    assert stale is False
    assert codec.loads_all_checked(envelopes[:1]) == (VALUES[:1], False)
    assert codec.loads_all_checked([]) == ([], False)


@pytest.mark.parametrize('serializer', ['json', 'pickle'])
def test_loads_all_says_stale_when_any_envelope_has_an_old_secret(serializer):
    old = SignedCodec(serializer, 'old-secret', 'session')
    codec = SignedCodec(serializer, SECRET, 'session', fallbacks=['old-secret'])
    envelopes = [codec.dumps(value) for value in VALUES]
    envelopes[2] = old.dumps(VALUES[2])
    assert codec.loads_all_checked(envelopes) == (VALUES, True)


@pytest.mark.parametrize('serializer', ['json', 'pickle'])
def test_loads_all_rejects_the_lot_for_one_bad_envelope(serializer):
    codec = SignedCodec(serializer, SECRET, 'session')
    envelopes = [codec.dumps(value) for value in VALUES]
    forged = bytearray(envelopes[3])
    forged[-1] ^= 1
    other = SignedCodec(serializer, 'another-secret', 'session').dumps(1)
    planted = pickle.dumps(['planted'])
    for bad, reason in ((bytes(forged), 'bad signature'), (other, 'bad signature'),
                        (planted, 'not a pyramid_beaker envelope')):
        with pytest.raises(InvalidData, match=reason):
            codec.loads_all_checked(envelopes[:3] + [bad] + envelopes[3:])


def test_loads_all_refuses_payloads_of_another_serializer():
    json_codec = SignedCodec('json', SECRET, 'session')
    pickle_codec = SignedCodec('pickle', SECRET, 'session')
    with pytest.raises(InvalidData, match='another serializer'):
        json_codec.loads_all_checked([json_codec.dumps(1), pickle_codec.dumps(2)])


@pytest.mark.parametrize('key_size', [0, 1, 32, 64, 65, 200])
def test_signer_gives_the_macs_of_hmac_sha256(key_size):
    key = bytes(range(256))[:key_size]
    signer = Signer(key)
    for message in (b'', b'x', b'PB1' * 100):
        assert signer.digest(message) == hmac.digest(key, message, 'sha256')


def test_json_payloads_parse_whole_or_not_at_all():
    codec = SignedCodec('json', SECRET, 'session')
    assert codec.loads(codec.dumps({'a': [1, 'é']})) == {'a': [1, 'é']}
    assert codec._parse(b'[1, 2] ') == [1, 2]
    with pytest.raises(InvalidData, match='unreadable payload'):
        codec._parse(b'[1] [2]')
