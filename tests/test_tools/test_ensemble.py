# Copyright (c) mmseg_ext contributors. All rights reserved.
"""tools/ensemble.py end to end on tiny multi-label members.

Two tiny ``MultiLabelEncoderDecoder`` members (fixed random init, different
test pipelines) on a generated packed dataset, plus one hand-made
probability folder. One subprocess run with ``--member`` pairs (validation,
``--save-probs``) and one with ``--prob-dirs`` check the CLI; the other runs
call the tool's ``main()`` in process (importing mmseg takes seconds).
Every output is compared with the library functions applied to the saved
probabilities.
"""
import csv
import importlib.util
import json
import os
import os.path as osp

import cv2
import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmseg.registry import MODELS

from mmseg_ext.apis.ensemble import (Ensemble, ProbDirMember, ensemble_test,
                                     load_probs, load_weights, save_probs,
                                     vote_fraction)
from mmseg_ext.utils.ensemble import (ThresholdSearch, classwise_select,
                                      hard_vote, quantize_probs, soft_vote)
from mmseg_ext.utils.io import imwrite_atomic
from mmseg_ext.utils.multilabel import (pack_multilabel, read_packed_label,
                                        unpack_multilabel, write_packed_label)
from mmseg_ext.utils.postprocess import apply_postprocess
from mmseg_ext.utils.rle import rle_decode

CLASSES = ('a', 'b', 'c')
C = len(CLASSES)
SIZES = {'000': (32, 32), '001': (32, 40), '002': (24, 32)}

CONFIG = """
default_scope = 'mmseg'
custom_imports = dict(imports=['mmseg_ext'], allow_failed_imports=False)
data_root = {data_root!r}
classes = {classes!r}
model = dict(
    type='MultiLabelEncoderDecoder',
    data_preprocessor=dict(
        type='MultiLabelSegDataPreProcessor', num_classes=3,
        mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375],
        bgr_to_rgb=True, size_divisor=8),
    pretrained=None,
    backbone=dict(
        type='MixVisionTransformer', in_channels=3, embed_dims=8,
        num_stages=2, num_layers=[1, 1], num_heads=[1, 1],
        patch_sizes=[7, 3], strides=[4, 2], sr_ratios=[4, 2],
        out_indices=(0, 1), mlp_ratio=2),
    decode_head=dict(
        type='MultiLabelHead',
        head=dict(type='SegformerHead', in_channels=[8, 8], in_index=[0, 1],
                  channels=8, dropout_ratio=0.0, num_classes=3,
                  align_corners=False)),
    test_cfg=dict(mode='whole', flip={flip}))
test_pipeline = [
    dict(type='LoadImageFromFile'),
    {resize}
    dict(type='LoadMultiLabelAnnotations'),
    dict(type='PackMultiLabelSegInputs'),
]
def loader(split):
    return dict(
        batch_size=1, num_workers=0,
        sampler=dict(type='DefaultSampler', shuffle=False),
        dataset=dict(
            type='PackedMultiLabelDataset', data_root=data_root,
            metainfo=dict(classes=classes),
            data_prefix=dict(img_path='img_dir/' + split,
                             seg_map_path='ann_dir/' + split),
            pipeline=test_pipeline))
val_dataloader = loader('val')
test_dataloader = loader('test')
"""


def generate(root):
    """Val images with packed labels, test images without labels."""
    rng = np.random.default_rng(0)
    for split in ('val', 'test'):
        for stem, (h, w) in SIZES.items():
            img = rng.integers(0, 60, (h, w, 3)).astype(np.uint8)
            masks = np.zeros((C, h, w), np.uint8)
            for k in range(C):
                cx = int(rng.integers(8, w - 8))
                cy = int(rng.integers(8, h - 8))
                cv2.circle(masks[k], (cx, cy), int(rng.integers(4, 9)), 1, -1)
                img[masks[k] == 1, k] += 120
            imwrite_atomic(img,
                           osp.join(root, 'img_dir', split, stem + '.png'))
            if split == 'val':
                ignore = np.zeros((h, w), bool)
                ignore[:2] = True
                write_packed_label(
                    osp.join(root, 'ann_dir', split, stem + '.png'),
                    pack_multilabel(masks, ignore))


def write_member(folder, name, data_root, seed, resize=None, flip=False):
    """A config file and a checkpoint of a fixed random init."""
    cfg_path = osp.join(folder, f'{name}.py')
    resize = '' if resize is None else \
        f"dict(type='Resize', scale={resize!r}, keep_ratio=True),"
    with open(cfg_path, 'w') as f:
        f.write(CONFIG.format(data_root=data_root, classes=CLASSES,
                              resize=resize, flip=flip))
    init_default_scope('mmseg')
    torch.manual_seed(seed)
    model = MODELS.build(Config.fromfile(cfg_path).model)
    with torch.no_grad():  # spread the sigmoid outputs over (0, 1)
        conv = model.decode_head.head.conv_seg
        conv.weight.mul_(20)
        conv.bias.copy_(torch.tensor([0.5, -0.5, 0.0]))
    ckpt = osp.join(folder, f'{name}.pth')
    torch.save({'state_dict': model.state_dict(), 'meta': {}}, ckpt)
    return cfg_path, ckpt


def load_tool():
    path = osp.join(osp.dirname(osp.dirname(osp.dirname(
        osp.abspath(__file__)))), 'tools', 'ensemble.py')
    spec = importlib.util.spec_from_file_location('ensemble_tool', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope='module')
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp('ensemble')
    data_root = str(root / 'data')
    generate(data_root)
    members = [
        write_member(str(root), 'member_a', data_root, seed=1, flip=True),
        write_member(str(root), 'member_b', data_root, seed=2,
                     resize=(24, 24)),
    ]
    # A third member: hand-made probabilities (smooth ramps).
    hand = {}
    for split in ('val', 'test'):
        folder = str(root / f'hand_{split}')
        rng = np.random.default_rng(7 if split == 'val' else 8)
        for stem, (h, w) in SIZES.items():
            probs = rng.random((C, h, w)) ** 2
            save_probs(osp.join(folder, stem + '.npy'), probs)
        hand[split] = folder
    return dict(root=str(root), data_root=data_root, members=members,
                hand=hand)


@pytest.fixture(scope='module')
def tool():
    return load_tool()


def member_args(setup):
    args = []
    for cfg, ckpt in setup['members']:
        args += ['--member', cfg, ckpt]
    return args


@pytest.fixture(scope='module')
def val_run(setup, tools):
    """Subprocess: ``--member`` x 2, ``--split val``, ``--save-probs``."""
    out = osp.join(setup['root'], 'val_members')
    probs = osp.join(setup['root'], 'probs_val')
    proc = tools.run([
        tools.python, 'tools/ensemble.py', *member_args(setup), '--split',
        'val', '--out-dir', out, '--save-probs', probs, '--postprocess'
    ], env=tools.env(with_test_hooks=False), timeout=240)
    assert proc.returncode == 0, tools.describe(proc)
    dirs = [osp.join(probs, '0_member_a'), osp.join(probs, '1_member_b')]
    return dict(out=out, dirs=dirs, proc=proc)


def read_masks(path):
    return unpack_multilabel(read_packed_label(path, C), C)


def all_probs(dirs, stem):
    return [load_probs(osp.join(d, stem + '.npy')) for d in dirs]


def val_targets(setup, stem):
    return read_masks(osp.join(setup['data_root'], 'ann_dir', 'val',
                               stem + '.png'))


def test_val_with_members_saves_probs_and_thresholds(setup, val_run):
    assert 'ensemble of 2 members (soft, threshold) over 3 images' in \
        val_run['proc'].stdout
    for d in val_run['dirs']:
        assert sorted(os.listdir(d)) == ['000.npy', '001.npy', '002.npy']
        for stem, (h, w) in SIZES.items():
            p = load_probs(osp.join(d, stem + '.npy'))
            assert p.shape == (C, h, w) and p.dtype == np.uint8  # ori size
    # The saved probabilities are the member's own sigmoid outputs.
    from mmengine.dataset import pseudo_collate
    from mmengine.runner import load_checkpoint
    from mmseg.registry import DATASETS
    cfg_path, ckpt = setup['members'][1]
    cfg = Config.fromfile(cfg_path)
    init_default_scope('mmseg')
    model = MODELS.build(cfg.model).eval()
    load_checkpoint(model, ckpt, map_location='cpu', logger='silent')
    dataset = DATASETS.build(cfg.val_dataloader.dataset)
    with torch.no_grad():
        out = model.test_step(pseudo_collate([dataset[1]]))[0]
    np.testing.assert_array_equal(
        quantize_probs(out.seg_logits.data.numpy()),
        load_probs(osp.join(val_run['dirs'][1], '001.npy')))

    with open(osp.join(val_run['out'], 'thresholds.json')) as f:
        result = json.load(f)
    assert result['classes'] == list(CLASSES)
    assert result['strategy'] == 'soft' and result['num_images'] == 3
    assert osp.isfile(osp.join(val_run['out'], 'thresholds.png'))
    assert set(result['postprocess_report']) == set(CLASSES)
    # Same search on the saved probabilities with the library.
    search = ThresholdSearch()
    for stem in SIZES:
        search.update(soft_vote(all_probs(val_run['dirs'], stem)),
                      val_targets(setup, stem))
    thr, dice = search.best()
    assert result['thresholds'] == pytest.approx(thr.tolist())
    assert result['dice'] == pytest.approx(dice.tolist())
    assert len(result['search']['mean_dice']) == 19
    assert not [n for n in os.listdir(val_run['out']) if n.startswith('.')]


def test_soft_test_with_prob_dirs_cli(setup, val_run, tool, tools):
    """Subprocess: weighted soft vote of 3 probability folders (the test
    images), masks and the hand-bone CSV."""
    # Test-split probabilities of the models: an in-process --member run on
    # the unlabelled test images.
    test_probs = osp.join(setup['root'], 'probs_test')
    out = osp.join(setup['root'], 'soft_masks')
    csv_path = osp.join(setup['root'], 'soft.csv')
    dirs = [osp.join(test_probs, '0_member_a'),
            osp.join(test_probs, '1_member_b'), setup['hand']['test']]
    tool.main([
        *member_args(setup), '--split', 'test', '--save-probs', test_probs,
        '--out-dir', osp.join(setup['root'], 'member_masks')
    ])
    proc = tools.run([
        tools.python, 'tools/ensemble.py', '--prob-dirs', *dirs,
        '--weights', '0.5', '0.3', '0.2', '--thresholds', '0.4',
        '--out-dir', out, '--submission', 'hand_bone', '--out', csv_path,
        '--classes', *CLASSES
    ], env=tools.env(with_test_hooks=False), timeout=240)
    assert proc.returncode == 0, tools.describe(proc)
    rows = list(csv.reader(open(csv_path)))
    assert rows[0] == ['image_name', 'class', 'rle']
    assert len(rows) == 1 + 3 * C
    assert [r[0] for r in rows[1::C]] == ['000.png', '001.png', '002.png']
    try:  # the hand-bone tool's reader accepts it
        from mmseg_ext.evaluation.metrics.hand_bone_submission import \
            read_submission_csv
    except ImportError:
        pass
    else:
        assert [list(r) for r in read_submission_csv(csv_path)] == rows[1:]
    assert not [n for n in os.listdir(setup['root']) if n.startswith('.')]
    by_key = {(r[0], r[1]): r[2] for r in rows[1:]}
    for stem, (h, w) in SIZES.items():
        expected = (soft_vote(all_probs(dirs, stem), [0.5, 0.3, 0.2]) >
                    0.4).astype(np.uint8)
        masks = read_masks(osp.join(out, stem + '.png'))
        np.testing.assert_array_equal(masks, expected)
        for c, name in enumerate(CLASSES):
            np.testing.assert_array_equal(
                rle_decode(by_key[(stem + '.png', name)], (h, w)),
                expected[c])
    # the model members' own 2-member masks (default threshold 0.5)
    expected = (soft_vote(all_probs(dirs[:2], '001')) > 0.5).astype(np.uint8)
    masks = read_masks(osp.join(setup['root'], 'member_masks', '001.png'))
    np.testing.assert_array_equal(masks, expected)
    # a model member mixed with a probability folder gives the same
    cfg, ckpt = setup['members'][0]
    mixed = osp.join(setup['root'], 'mixed_masks')
    tool.main(['--member', cfg, ckpt, '--prob-dirs', dirs[1], '--out-dir',
               mixed])
    np.testing.assert_array_equal(read_masks(osp.join(mixed, '001.png')),
                                  expected)


def val_dirs(setup, val_run):
    return val_run['dirs'] + [setup['hand']['val']]


def test_soft_weight_table_and_thresholds_json(setup, val_run, tool,
                                               tmp_path):
    dirs = val_dirs(setup, val_run)
    table = tmp_path / 'weights.csv'
    table.write_text('a,b,c\n1,0,2\n1,1,0\n0,3,1\n')
    thr_json = tmp_path / 'thr.json'
    plan = {'b': ['lcc'], 'c': ['min_area', 6]}
    thr_json.write_text(json.dumps(dict(
        classes=list(CLASSES), thresholds=[0.3, 0.5, 0.45],
        postprocess=plan, strategy='soft')))
    out = tmp_path / 'masks'
    tool.main(['--prob-dirs', *dirs, '--weights', str(table),
               '--thresholds', str(thr_json), '--out-dir', str(out)])
    w = load_weights(str(table), 3)
    assert w.shape == (3, 3)
    for stem in SIZES:
        merged = soft_vote(all_probs(dirs, stem), w)
        expected = (merged > np.array([0.3, 0.5, 0.45]).reshape(-1, 1, 1))
        expected = apply_postprocess(expected.astype(np.uint8), plan,
                                     CLASSES)
        np.testing.assert_array_equal(read_masks(str(out / f'{stem}.png')),
                                      expected)


@pytest.mark.parametrize('k', [1, 2, 3])
def test_hard_vote(setup, val_run, tool, tmp_path, k):
    dirs = val_dirs(setup, val_run)
    out = tmp_path / 'hard'
    tool.main(['--prob-dirs', *dirs, '--strategy', 'hard', '--k', str(k),
               '--out-dir', str(out)])
    for stem in SIZES:
        expected = hard_vote(all_probs(dirs, stem), k=k, threshold=0.5)
        np.testing.assert_array_equal(read_masks(str(out / f'{stem}.png')),
                                      expected)


def test_hard_val_searches_k(setup, val_run, tool, tmp_path):
    dirs = val_dirs(setup, val_run)
    gt_dir = osp.join(setup['data_root'], 'ann_dir', 'val')
    tool.main(['--prob-dirs', *dirs, '--strategy', 'hard', '--split', 'val',
               '--gt-dir', gt_dir, '--out-dir', str(tmp_path)])
    result = json.loads((tmp_path / 'thresholds.json').read_text())
    assert result['search']['candidates'] == pytest.approx(
        [0.5 / 3, 1.5 / 3, 2.5 / 3])
    # k of each class: the best k-of-3 vote by the library
    for c in range(C):
        scores = []
        for k in (1, 2, 3):
            search = ThresholdSearch([0.5])
            for stem in SIZES:
                votes = hard_vote(all_probs(dirs, stem), k=k)
                search.update(votes[c:c + 1].astype(np.float32),
                              val_targets(setup, stem)[c:c + 1])
            scores.append(search.mean_dice()[0, 0])
        assert result['k'][c] == 1 + int(np.argmax(scores))
    # and the JSON drives the test split
    out = tmp_path / 'masks'
    tool.main(['--prob-dirs', *dirs, '--strategy', 'hard', '--thresholds',
               str(tmp_path / 'thresholds.json'), '--out-dir', str(out)])
    for stem in SIZES:
        probs = all_probs(dirs, stem)
        expected = np.stack([
            hard_vote(probs, k=result['k'][c])[c] for c in range(C)])
        np.testing.assert_array_equal(read_masks(str(out / f'{stem}.png')),
                                      expected)


def test_classwise(setup, val_run, tool, tmp_path):
    dirs = val_dirs(setup, val_run)
    score_files = []
    scores = [[0.9, 0.1, 0.2], [0.5, 0.8, None], [0.1, 0.3, 0.4]]
    for i, dice in enumerate(scores):
        path = tmp_path / f'scores{i}.json'
        path.write_text(json.dumps(dict(classes=list(CLASSES), dice=dice)))
        score_files.append(str(path))
    out = tmp_path / 'masks'
    tool.main(['--prob-dirs', *dirs, '--strategy', 'classwise', '--scores',
               *score_files, '--out-dir', str(out)])
    table = np.array([[0.9, 0.1, 0.2], [0.5, 0.8, -np.inf],
                      [0.1, 0.3, 0.4]])
    for stem in SIZES:
        probs = all_probs(dirs, stem)
        expected = (classwise_select(probs, table) > 0.5).astype(np.uint8)
        # best members per class: 0, 1, 2
        np.testing.assert_array_equal(
            expected, np.stack([(p[c] > 127.5) for c, p in enumerate(probs)
                                ]).astype(np.uint8))
        np.testing.assert_array_equal(read_masks(str(out / f'{stem}.png')),
                                      expected)


def test_binary_member_writes_0_255_png_and_building_csv(tmp_path):
    folder = tmp_path / 'binary'
    probs = {'x': np.zeros((1, 3, 4)), 'y': np.full((1, 3, 4), 0.9),
             'z': np.full((1, 3, 4), 0.2)}
    probs['x'][0, 1, 1:3] = 0.8
    for stem, p in probs.items():
        save_probs(str(folder / f'{stem}.npy'), p)
    ensemble = Ensemble([ProbDirMember(str(folder))])
    csv_path = tmp_path / 'building.csv'
    ensemble_test(ensemble, out_dir=str(tmp_path / 'out'),
                  submission='building', submission_file=str(csv_path),
                  progress=False)
    mask = cv2.imread(str(tmp_path / 'out' / 'x.png'), cv2.IMREAD_UNCHANGED)
    assert mask.tolist() == [[0] * 4, [0, 255, 255, 0], [0] * 4]
    rows = list(csv.reader(open(csv_path)))
    assert rows == [['img_id', 'mask_rle'], ['x', '6 2'], ['y', '1 12'],
                    ['z', '-1']]


def test_softmax_members_argmax(tmp_path):
    """Softmax members: argmax decision, per-class val scores, label PNG.
    """
    # E = 2 members, C = 3 classes, one 1 x 4 image.
    m1 = [[0.6, 0.3, 0.1], [0.2, 0.7, 0.1], [0.1, 0.2, 0.7], [0.5, 0.3, 0.2]]
    m2 = [[0.1, 0.6, 0.3], [0.1, 0.8, 0.1], [0.3, 0.3, 0.4], [0.1, 0.2, 0.7]]
    dirs = []
    for i, m in enumerate((m1, m2)):
        folder = str(tmp_path / f'm{i}')
        save_probs(osp.join(folder, 'img.npy'),
                   np.asarray(m, np.float32).T[:, None, :])  # (3, 1, 4)
        dirs.append(ProbDirMember(folder))
    gt_dir = tmp_path / 'gt'
    gt_dir.mkdir()
    cv2.imwrite(str(gt_dir / 'img.png'), np.array([[0, 1, 2, 255]],
                                                  np.uint8))
    ensemble = Ensemble(dirs, decision='argmax', gt_dir=str(gt_dir),
                        gt_format='label', classes=['bg', 'x', 'y'])
    from mmseg_ext.apis.ensemble import ensemble_val
    result = ensemble_val(ensemble, str(tmp_path / 'val'), progress=False)
    # soft mean argmax: (1, 1, 2, 2); pixel 3 is ignored.
    # bg: none predicted, one true -> eps / (1 + eps); x: 2 predicted, one
    # right -> (2 + eps) / (3 + eps); y: exact -> 1.
    eps = 1e-4
    expected = [eps / (1 + eps), (2 + eps) / (3 + eps), 1.0]
    assert result['dice'] == pytest.approx(expected)
    assert result['mDice'] == pytest.approx(sum(expected) / 3)
    assert result['classes'] == ['bg', 'x', 'y']
    saved = json.loads((tmp_path / 'val' / 'val_scores.json').read_text())
    assert saved['dice'] == pytest.approx(expected)
    ensemble_test(ensemble, out_dir=str(tmp_path / 'soft'), progress=False)
    label = cv2.imread(str(tmp_path / 'soft' / 'img.png'),
                       cv2.IMREAD_UNCHANGED)
    assert label.tolist() == [[1, 1, 2, 2]]
    # hard: member labels (0, 1, 2, 0) and (1, 1, 2, 2); 1-1 ties go to
    # the lower class index.
    hard = Ensemble(dirs, strategy='hard', decision='argmax')
    ensemble_test(hard, out_dir=str(tmp_path / 'hard'), progress=False)
    label = cv2.imread(str(tmp_path / 'hard' / 'img.png'),
                       cv2.IMREAD_UNCHANGED)
    assert label.tolist() == [[0, 1, 2, 0]]
    with pytest.raises(ValueError, match='threshold decision'):
        ensemble_test(ensemble, out_dir=str(tmp_path / 'x'), thresholds=0.3,
                      progress=False)


def test_vote_fraction_is_hard_vote():
    rng = np.random.default_rng(0)
    members = [quantize_probs(rng.random((2, 5, 6))) for _ in range(4)]
    frac = vote_fraction(members, [0.3, 0.6])
    for k in range(1, 5):
        np.testing.assert_array_equal(
            (frac > (k - 0.5) / 4).astype(np.uint8),
            hard_vote(members, k, [0.3, 0.6]))


def run_error(tool, argv, capsys):
    capsys.readouterr()
    with pytest.raises(SystemExit) as err:
        tool.main(argv)
    assert err.value.code == 2  # one line on stderr (tool_main)
    msg = capsys.readouterr().err
    assert msg.startswith('tools/ensemble.py: error: ') and \
        len(msg.strip().splitlines()) == 1, msg
    return msg


def test_errors(setup, val_run, tool, tmp_path, capsys):
    dirs = val_dirs(setup, val_run)
    msg = run_error(tool, ['--prob-dirs', *dirs, '--weights', '1', '2',
                           '--out-dir', str(tmp_path)], capsys)
    assert 'one weight per member' in msg and '3 members' in msg
    msg = run_error(tool, ['--prob-dirs', *dirs, '--strategy', 'classwise',
                           '--out-dir', str(tmp_path)], capsys)
    assert '--scores' in msg
    msg = run_error(tool, ['--prob-dirs', *dirs, '--k', '2',
                           '--out-dir', str(tmp_path)], capsys)
    assert '--k applies to --strategy hard' in msg
    # a folder that lacks an image
    partial = tmp_path / 'partial'
    partial.mkdir()
    for stem in ('000', '001'):
        os.link(osp.join(dirs[0], stem + '.npy'), partial / f'{stem}.npy')
    msg = run_error(tool, ['--prob-dirs', dirs[0], str(partial),
                           '--out-dir', str(tmp_path)], capsys)
    assert 'members list different images' in msg and "'002'" in msg
    # val from folders without ground truth
    msg = run_error(tool, ['--prob-dirs', *dirs, '--split', 'val',
                           '--out-dir', str(tmp_path)], capsys)
    assert '--gt-dir' in msg
    # probabilities of different shapes
    other = tmp_path / 'other'
    for stem in SIZES:
        save_probs(str(other / f'{stem}.npy'), np.zeros((2, 4, 4)))
    msg = run_error(tool, ['--prob-dirs', dirs[0], str(other),
                           '--out-dir', str(tmp_path / 'o')], capsys)
    assert 'one shape' in msg


def test_member_datasets_must_agree(setup, tool, tmp_path, capsys):
    (cfg_a, ckpt_a), (cfg_b, ckpt_b) = setup['members']
    # member b sees only some of the images: another data root
    root = tmp_path / 'data'
    for split in ('img_dir/test',):
        os.makedirs(root / split)
        os.link(osp.join(setup['data_root'], split, '000.png'),
                root / split / '000.png')
    cfg = Config.fromfile(cfg_b)
    cfg.test_dataloader.dataset.data_root = str(root)
    cfg_c = str(tmp_path / 'member_c.py')
    cfg.dump(cfg_c)
    msg = run_error(tool, ['--member', cfg_a, ckpt_a, '--member', cfg_c,
                           ckpt_b, '--out-dir', str(tmp_path / 'o')],
                    capsys)
    assert 'members list different images' in msg
    assert '3' in msg and '1' in msg


def test_weights_and_thresholds_files(tmp_path):
    from mmseg_ext.apis.ensemble import load_thresholds
    path = tmp_path / 'w.json'
    path.write_text('[1, 2]')
    assert load_weights(str(path), 2).tolist() == [1.0, 2.0]
    path.write_text('{"weights": [[1, 0, 2], [0, 1, 1]]}')
    assert load_weights(str(path), 2).shape == (2, 3)
    assert load_weights(['0.5', '1'], 2).tolist() == [0.5, 1.0]
    with pytest.raises(ValueError, match='one weight per member'):
        load_weights(str(path), 3)
    with pytest.raises(ValueError, match='non-negative'):
        load_weights(['1', '-1'], 2)
    bad = tmp_path / 'bad.csv'
    bad.write_text('1,2\n1,x\n')
    with pytest.raises(ValueError, match='bad.csv:2'):
        load_weights(str(bad), 2)
    spec = load_thresholds('0.3', 2)
    assert spec['thresholds'].tolist() == pytest.approx([0.3, 0.3])
    with pytest.raises(ValueError, match=r'\[0, 1\)'):
        load_thresholds(1.5, 2)
    thr = tmp_path / 't.json'
    thr.write_text('{"thresholds": [0.1]}')
    with pytest.raises(ValueError, match='C=2'):
        load_thresholds(str(thr), 2)


# ------------------------------------------------------------ multi-process
def dist_run(tools, args, timeout=240):
    """``bash tools/dist_ensemble.sh 2 ARGS`` (2 CPU processes, gloo)."""
    env = tools.env(with_test_hooks=False, PYTHON=tools.python,
                    PORT=tools.free_port())
    return tools.run(['bash', 'tools/dist_ensemble.sh', '2', *args],
                     env=env, timeout=timeout)


def test_ddp_val_matches_single_process(setup, val_run, tools):
    """2 processes: the same thresholds, plan and saved probabilities as the
    single-process ``val_run`` (the images are sharded 000, 002 | 001)."""
    out = osp.join(setup['root'], 'val_ddp')
    probs = osp.join(setup['root'], 'probs_val_ddp')
    proc = dist_run(tools, [
        *member_args(setup), '--split', 'val', '--out-dir', out,
        '--save-probs', probs, '--postprocess'
    ])
    assert proc.returncode == 0, tools.describe(proc)
    assert proc.stdout.count('ensemble of 2 members') == 1  # rank 0 only
    with open(osp.join(val_run['out'], 'thresholds.json')) as f:
        single = json.load(f)
    with open(osp.join(out, 'thresholds.json')) as f:
        ddp = json.load(f)
    assert ddp['num_images'] == 3 and ddp['classes'] == list(CLASSES)
    assert ddp['thresholds'] == single['thresholds']
    assert ddp['postprocess'] == single['postprocess']
    assert ddp['dice'] == pytest.approx(single['dice'])  # summed in
    for a, b in zip(ddp['search']['mean_dice'],  # another order
                    single['search']['mean_dice']):
        assert a == pytest.approx(b)
    for name, report in single['postprocess_report'].items():
        assert ddp['postprocess_report'][name] == pytest.approx(report)
    for member in ('0_member_a', '1_member_b'):
        for stem in SIZES:
            np.testing.assert_array_equal(
                load_probs(osp.join(probs, member, stem + '.npy')),
                load_probs(osp.join(setup['root'], 'probs_val', member,
                                    stem + '.npy')))
    assert not [n for n in os.listdir(out) if n.startswith('.')]


def test_ddp_test_writes_one_csv(setup, tool, tools, tmp_path):
    """2 processes, model members: one hand-bone CSV and the masks, equal
    to a single-process run; no per-rank or temporary file is left."""
    single_csv = str(tmp_path / 'single.csv')
    tool.main([
        *member_args(setup), '--split', 'test', '--out-dir',
        str(tmp_path / 'single'), '--submission', 'hand_bone', '--out',
        single_csv
    ])
    ddp_dir = tmp_path / 'ddp'
    proc = dist_run(tools, [
        *member_args(setup), '--split', 'test', '--out-dir',
        str(ddp_dir / 'masks'), '--submission', 'hand_bone', '--out',
        str(ddp_dir / 'sub.csv')
    ])
    assert proc.returncode == 0, tools.describe(proc)
    with open(single_csv) as f, open(ddp_dir / 'sub.csv') as g:
        single, ddp = f.read(), g.read()
    assert ddp == single and ddp.count('\n') == 1 + 3 * C
    assert sorted(os.listdir(ddp_dir)) == ['masks', 'sub.csv']
    for stem in SIZES:
        np.testing.assert_array_equal(
            read_masks(str(ddp_dir / 'masks' / f'{stem}.png')),
            read_masks(str(tmp_path / 'single' / f'{stem}.png')))


@pytest.fixture
def binary_dirs(tmp_path):
    """5 one-class images, two probability folders."""
    rng = np.random.default_rng(3)
    dirs = [str(tmp_path / 'p0'), str(tmp_path / 'p1')]
    for i in range(5):
        for d in dirs:
            save_probs(osp.join(d, f'tile{i}.npy'),
                       rng.random((1, 6, 5)) * (i % 3 != 2))
    return dirs


def test_ddp_building_csv_keeps_input_order(binary_dirs, tools, tmp_path):
    """Building rows come back in input order although rank 0 predicts
    tiles 0, 2, 4 and rank 1 tiles 1, 3; empty tiles are ``-1``."""
    ensemble = Ensemble([ProbDirMember(d) for d in binary_dirs])
    single = tmp_path / 'single.csv'
    ensemble_test(ensemble, submission='building',
                  submission_file=str(single), progress=False)
    ddp = tmp_path / 'ddp.csv'
    proc = dist_run(tools, ['--prob-dirs', *binary_dirs, '--submission',
                            'building', '--out', str(ddp)])
    assert proc.returncode == 0, tools.describe(proc)
    rows = list(csv.reader(open(ddp)))
    assert [r[0] for r in rows[1:]] == [f'tile{i}' for i in range(5)]
    assert rows[3][1] == '-1'
    assert ddp.read_text() == single.read_text()


def test_ddp_error_on_one_rank_fails_every_rank(binary_dirs, tools,
                                                tmp_path):
    """A broken file in rank 1's shard: both ranks stop with the file named,
    no CSV is written, nothing hangs."""
    with open(osp.join(binary_dirs[1], 'tile3.npy'), 'wb') as f:
        f.write(b'not a numpy file')
    out = tmp_path / 'sub.csv'
    proc = dist_run(tools, ['--prob-dirs', *binary_dirs, '--submission',
                            'building', '--out', str(out)], timeout=120)
    assert proc.returncode != 0
    text = proc.stdout + proc.stderr
    assert 'tile3.npy' in text
    assert 'rank 1 failed' in text  # what rank 0 reports
    assert not out.exists()
    assert not [n for n in os.listdir(tmp_path) if n.startswith('.')]
