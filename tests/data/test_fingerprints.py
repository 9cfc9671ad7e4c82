"""Content fingerprints find the examples two sets share, whatever their order."""

import torch

from siamese.data.fingerprints import example_fingerprints, shared_examples


def test_fingerprints_match_exactly_equal_examples_only() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (500, 1, 8, 8), generator=g, dtype=torch.uint8)
    x[7] = x[3]  # a duplicate inside the set
    reference = torch.cat(
        [x[torch.tensor([10, 3, 499])], torch.zeros(2, 1, 8, 8, dtype=torch.uint8)]
    )
    reference[0, 0, 0, 0] ^= 1  # one bit away from x[10]: not the same example
    found = shared_examples(x, reference)
    # Brute force on the bytes.
    wanted = {r.numpy().tobytes() for r in reference}
    expected = torch.tensor([row.numpy().tobytes() in wanted for row in x])
    assert torch.equal(found, expected) and found.nonzero().flatten().tolist() == [3, 7, 499]
    fp = example_fingerprints(x)
    assert fp[3] == fp[7] and fp.unique().numel() == 499 and bool((fp >= 0).all())


def test_fingerprints_do_not_depend_on_the_batch_and_handle_floats() -> None:
    x = torch.randn(3000, 40, dtype=torch.float32)
    whole = example_fingerprints(x)
    assert torch.equal(whole[1234:1240], example_fingerprints(x[1234:1240]))
    assert not shared_examples(x, x.double()).any()  # another dtype never matches
    assert shared_examples(x.flip(0), x).all()
