# Copyright (c) mmseg_ext contributors. All rights reserved.
import numpy as np
import pytest
import torch

from mmseg_ext.utils.multilabel import (num_packed_channels, pack_label_map,
                                        pack_multilabel,
                                        packed_positive_counts,
                                        read_packed_label, unpack_multilabel,
                                        unpack_multilabel_torch,
                                        write_packed_label)


def random_masks(num_classes, h=6, w=7, seed=0):
    rng = np.random.default_rng(seed)
    masks = rng.random((num_classes, h, w)) < 0.4
    ignore = rng.random((h, w)) < 0.2
    return masks, ignore


@pytest.mark.parametrize('num_classes,channels', [(1, 1), (15, 1), (16, 2),
                                                  (29, 2), (31, 2), (32, 3)])
def test_num_packed_channels(num_classes, channels):
    assert num_packed_channels(num_classes) == channels


@pytest.mark.parametrize('bad', [0, -1, 1.5, True, None])
def test_num_packed_channels_rejects(bad):
    with pytest.raises(ValueError, match='num_classes'):
        num_packed_channels(bad)


@pytest.mark.parametrize('num_classes', [1, 15, 16, 29])
def test_round_trip(num_classes):
    masks, ignore = random_masks(num_classes)
    packed = pack_multilabel(masks, ignore)
    assert packed.dtype == np.uint16
    assert packed.shape == (6, 7, num_packed_channels(num_classes))
    out = unpack_multilabel(packed, num_classes)
    expected = np.where(ignore[None], 255, masks.astype(np.uint8))
    np.testing.assert_array_equal(out, expected)
    # torch unpack gives the same, also on the int16 view and batched.
    chw = torch.from_numpy(
        np.ascontiguousarray(packed.view(np.int16).transpose(2, 0, 1)))
    np.testing.assert_array_equal(
        unpack_multilabel_torch(chw, num_classes).numpy(), expected)
    batched = unpack_multilabel_torch(torch.stack([chw, chw]).long(),
                                      num_classes)
    assert batched.shape == (2, num_classes, 6, 7)
    np.testing.assert_array_equal(batched[1].numpy(), expected)
    counts, num_valid = packed_positive_counts(packed, num_classes)
    np.testing.assert_array_equal(counts, (masks & ~ignore).sum((1, 2)))
    assert num_valid == int((~ignore).sum())


def test_hand_values():
    # class 0 -> bit 0 of channel 0, class 16 -> bit 0 of channel 1,
    # valid bit -> bit 15 of the last channel.
    masks = np.zeros((17, 1, 2), dtype=bool)
    masks[0, 0, 0] = True
    masks[16, 0, 1] = True
    packed = pack_multilabel(masks)
    assert packed[0, 0].tolist() == [1, 1 << 15]
    assert packed[0, 1].tolist() == [0, (1 << 15) | 1]


@pytest.mark.parametrize('pad', [0, 255])
@pytest.mark.parametrize('num_classes', [1, 29])
def test_padding_reads_as_ignored(pad, num_classes):
    masks, _ = random_masks(num_classes, seed=1)
    packed = pack_multilabel(masks)
    k = packed.shape[-1]
    padded = np.full((8, 9, k), pad, dtype=np.uint16)
    padded[:6, :7] = packed
    out = unpack_multilabel(padded, num_classes)
    assert (out[:, 6:, :] == 255).all() and (out[:, :, 7:] == 255).all()
    np.testing.assert_array_equal(out[:, :6, :7], masks.astype(np.uint8))
    # Same with torch padding of the int16 tensor.
    chw = torch.from_numpy(
        np.ascontiguousarray(packed.view(np.int16).transpose(2, 0, 1)))
    padded_t = torch.nn.functional.pad(chw, (0, 2, 0, 2), value=pad)
    np.testing.assert_array_equal(
        unpack_multilabel_torch(padded_t, num_classes).numpy(), out)


def test_pack_label_map_regions():
    label = np.array([[0, 1, 2], [4, 255, 1]], dtype=np.uint8)
    packed = pack_label_map(label, [[1, 2, 4], [1, 4], [4]])
    out = unpack_multilabel(packed, 3)
    np.testing.assert_array_equal(
        out,
        [[[0, 1, 1], [1, 255, 1]], [[0, 1, 0], [1, 255, 1]],
         [[0, 0, 0], [1, 255, 0]]])


@pytest.mark.parametrize('num_classes', [1, 15, 16, 29, 50])
def test_png_round_trip(tmp_path, num_classes):
    masks, ignore = random_masks(num_classes, seed=2)
    packed = pack_multilabel(masks, ignore)
    path = str(tmp_path / f'label_{num_classes}.png')
    write_packed_label(path, packed)
    back = read_packed_label(path, num_classes)
    assert back.dtype == np.uint16 and back.shape == packed.shape
    np.testing.assert_array_equal(back, packed)


def test_read_wrong_num_classes(tmp_path):
    path = str(tmp_path / 'a.png')
    write_packed_label(path, pack_multilabel(np.zeros((5, 3, 3), bool)))
    with pytest.raises(ValueError, match='a.png'):
        read_packed_label(path, 29)
    with pytest.raises(FileNotFoundError, match='missing.png'):
        read_packed_label(str(tmp_path / 'missing.png'), 5)


def test_bad_shapes():
    with pytest.raises(ValueError, match=r'\(C, H, W\)'):
        pack_multilabel(np.zeros((3, 3), bool))
    with pytest.raises(ValueError, match='ignore'):
        pack_multilabel(np.zeros((2, 3, 3), bool), np.zeros((2, 2), bool))
    with pytest.raises(ValueError, match=r'\(H, W, 2\)'):
        unpack_multilabel(np.zeros((3, 3, 1), np.uint16), 29)
    with pytest.raises(ValueError, match=r'\(N, 2, H, W\)'):
        unpack_multilabel_torch(torch.zeros(1, 1, 3, 3, dtype=torch.int16),
                                29)
    with pytest.raises(ValueError, match='integer'):
        unpack_multilabel_torch(torch.zeros(1, 1, 3, 3), 3)
    with pytest.raises(ValueError, match='uint16'):
        write_packed_label('x.png', np.zeros((3, 3, 1), np.int32))
    with pytest.raises(ValueError, match=r'\(H, W\)'):
        pack_label_map(np.zeros((1, 3, 3), np.uint8), [[1]])
    with pytest.raises(ValueError, match='regions'):
        pack_label_map(np.zeros((3, 3), np.uint8), [[]])


def test_read_packed_label_rejects_other_class_count(tmp_path):
    masks = np.zeros((29, 4, 5), bool)
    masks[3, 1, 1] = True
    path = str(tmp_path / 'l.png')
    write_packed_label(path, pack_multilabel(masks))
    with pytest.raises(ValueError, match='C=3 classes'):
        read_packed_label(path, 3)
    with pytest.raises(ValueError, match='C=40 classes'):
        read_packed_label(path, 40)


@pytest.mark.parametrize('num_classes', [1, 15, 29, 40])
def test_as_unpacked_packed_and_pipeline_channels(num_classes):
    from mmseg_ext.utils.multilabel import as_unpacked, pipeline_channels
    masks, ignore = random_masks(num_classes)
    packed = pack_multilabel(masks, ignore)  # (H, W, K) uint16
    expected = unpack_multilabel(packed, num_classes)
    chw = torch.from_numpy(packed.view(np.int16).transpose(2, 0, 1).copy())
    k = num_packed_channels(num_classes)
    assert pipeline_channels(num_classes) == (3 if k == 2 else k)
    # the pipeline's zero channel (K = 2 -> 3) is dropped
    pipe = torch.cat(
        [chw, chw.new_zeros((pipeline_channels(num_classes) - k, ) +
                            chw.shape[1:])])
    for tensor in (chw, pipe):
        out = as_unpacked(tensor, num_classes)
        assert out.dtype == torch.uint8
        np.testing.assert_array_equal(out.numpy(), expected)
        batch = as_unpacked(torch.stack([tensor, tensor]), num_classes, 7)
        assert batch.shape == (2, num_classes) + masks.shape[1:]
        assert (batch[:, :, torch.from_numpy(ignore)] == 7).all()
    # ignore_index=None means 255
    np.testing.assert_array_equal(
        as_unpacked(chw, num_classes, None).numpy(), expected)


def test_as_unpacked_passes_other_labels_through():
    from mmseg_ext.utils.multilabel import as_unpacked, is_packed
    unpacked = torch.zeros((3, 4, 4), dtype=torch.uint8)
    labels = torch.zeros((1, 4, 4), dtype=torch.int64)
    array = np.zeros((3, 4, 4), np.int16)
    for label in (unpacked, labels, array):
        assert as_unpacked(label, 3) is label
    assert not is_packed(array) and is_packed(labels.to(torch.int16))


def test_as_unpacked_bad_channels():
    from mmseg_ext.utils.multilabel import as_unpacked
    with pytest.raises(ValueError, match=r'C=29 classes should have shape'):
        as_unpacked(torch.zeros((5, 4, 4), dtype=torch.int16), 29)
    with pytest.raises(ValueError, match=r'C=3 classes should have shape'):
        as_unpacked(torch.zeros((4, 4), dtype=torch.int16), 3)
