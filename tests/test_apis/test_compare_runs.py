# Copyright (c) mmseg_ext contributors. All rights reserved.
"""Run comparison (``mmseg_ext/apis/compare_runs.py``) on hand-written work
dirs with known values, and its readers of external formats (mmengine
scalars and logs, MMSeg's per-class PrettyTable, per-case CSVs, MMSeg's
``metafile.yaml``)."""
import csv
import json
import math
import os
import os.path as osp

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prettytable import PrettyTable

from mmseg_ext.apis.compare_runs import (RunInputError, ZooLookupError,
                                         best_and_last, bootstrap_ci,
                                         compare_runs, config_diff,
                                         flatten_config, metric_rule,
                                         paired_comparison, pareto_front,
                                         parse_log_scalars, parse_log_tables,
                                         read_per_case_csv, read_run,
                                         read_scalars, zoo_lookup)

CONFIG = """
model = dict(type='EncoderDecoder',
             data_preprocessor=dict(type='SegDataPreProcessor',
                                    size=(64, 64)),
             backbone=dict(type='ResNetV1c', depth={depth}, in_channels=3),
             decode_head=dict(type='PSPHead', num_classes=3))
train_dataloader = dict(batch_size={batch}, dataset=dict(type='ADE20KDataset'))
train_cfg = dict(type='IterBasedTrainLoop', max_iters=80, val_interval=40)
optim_wrapper = dict(optimizer=dict(type='SGD', lr={lr}))
work_dir = '{work_dir}'
"""
CLASSES = ['bg', 'cat', 'dog']


def _write_run(root, name, val, train=(), per_class=None, per_case=None,
               depth=50, lr=0.01, batch=2, stamp='20240101_120000',
               log=None):
    """A work dir as mmengine writes it, with the given records."""
    work_dir = osp.join(str(root), name)
    run_dir = osp.join(work_dir, stamp)
    os.makedirs(osp.join(run_dir, 'vis_data'), exist_ok=True)
    with open(osp.join(run_dir, 'vis_data', 'config.py'), 'w') as f:
        f.write(CONFIG.format(depth=depth, lr=lr, batch=batch,
                              work_dir=work_dir))
    if val is not None:
        with open(osp.join(run_dir, 'vis_data', 'scalars.json'), 'w') as f:
            for step, loss in train:
                f.write(json.dumps(dict(lr=lr, loss=loss, iter=step,
                                        step=step)) + '\n')
            for step, metrics in val:
                f.write(json.dumps(dict(metrics, data_time=0.1, time=0.2,
                                        step=step)) + '\n')
    if log is not None:
        with open(osp.join(run_dir, f'{stamp}.log'), 'w') as f:
            f.write(log)
    if per_class is not None:
        with open(osp.join(work_dir, 'val_scores.json'), 'w') as f:
            json.dump(per_class, f)
    if per_case is not None:
        with open(osp.join(work_dir, 'per_case.csv'), 'w', newline='') as f:
            writer = csv.writer(f)
            writer.writerows(per_case)
    return work_dir


@pytest.fixture
def two_runs(tmp_path):
    a = _write_run(
        tmp_path, 'a', [(40, dict(mIoU=30.0, mDice=40.0)),
                        (80, dict(mIoU=35.0, mDice=45.0))],
        train=[(10, 1.0), (20, 0.8)],
        per_class=dict(classes=CLASSES, dice=[0.9, 0.5, 0.25],
                       iou=[0.8, 0.4, 0.2]))
    b = _write_run(
        tmp_path, 'b', [(40, dict(mIoU=38.0, mDice=48.0)),
                        (80, dict(mIoU=36.0, mDice=47.0))],
        per_class=dict(classes=CLASSES, dice=[0.9, 0.6, None],
                       iou=[0.7, 0.5, None]), depth=101, lr=0.02)
    return a, b


def test_tables_equal_inputs_and_best_marks(two_runs, tmp_path):
    out = str(tmp_path / 'out')
    res = compare_runs(two_runs, out, complexity=False)
    assert res['metric'] == 'mDice' and res['rule'] == 'greater'
    a, b = res['runs']
    assert (a['best'], a['best_step'], a['last'], a['last_step']) == \
        (45.0, 80, 45.0, 80)
    assert (b['best'], b['best_step'], b['last'], b['last_step']) == \
        (48.0, 40, 47.0, 80)
    assert a['backbone'] == 'ResNetV1c(depth=50)' and a['crop'] == '64x64'
    assert a['schedule'] == '80 iters' and a['batch'] == 2
    dice = res['per_class']['dice']
    assert dice['values'] == [[0.9, 0.5, 0.25], [0.9, 0.6, None]]
    # a tie marks both; a class only one run scored marks that run
    assert dice['best'] == [[True, False, True], [True, True, False]]
    assert res['per_class']['iou']['best'] == [[True, False, True],
                                               [False, True, False]]
    text = open(osp.join(out, 'summary.md')).read()
    assert '| cat | 0.5000 | **0.6000** |' in text
    assert '| dog | **0.2500** | — |' in text
    assert '**48.0000 (40)**' in text  # best run of the metric
    with open(osp.join(out, 'summary.csv')) as f:
        rows = list(csv.DictReader(f))
    assert [r['name'] for r in rows] == ['a', 'b']
    assert rows[1]['best'] == '48.0' and rows[1]['best_step'] == '40'
    with open(osp.join(out, 'per_class.csv')) as f:
        pc = list(csv.reader(f))
    assert pc[0] == ['metric', 'class', 'a', 'b', 'best']
    assert pc[2] == ['dice', 'cat', '0.500000', '0.600000', 'b']
    # the config diff: depth and lr differ, work_dir is left out
    keys = [d['key'] for d in res['config_diff']]
    assert keys == ['model.backbone.depth', 'optim_wrapper.optimizer.lr']
    assert res['config_diff'][0]['values'] == [50, 101]
    for name in ('curves.png', 'per_class.png', 'summary.json',
                 'config_diff.csv', 'paired.csv'):
        assert osp.isfile(osp.join(out, name)), name
    assert json.load(open(osp.join(out, 'summary.json')))['metric'] == \
        'mDice'


def test_metric_key_and_rule(two_runs, tmp_path):
    res = compare_runs(two_runs, str(tmp_path / 'o'), metric='mIoU',
                       rule='less', complexity=False, plot=False,
                       names=['A', 'B'])
    assert [r['name'] for r in res['runs']] == ['A', 'B']
    assert [(r['best'], r['best_step']) for r in res['runs']] == \
        [(30.0, 40), (36.0, 80)]
    assert metric_rule('BraTS/WT_hd95') == 'less'
    assert metric_rule('loss') == 'less' and metric_rule('mDice') == \
        'greater'


def test_bad_runs_are_named_and_skipped(two_runs, tmp_path):
    a, b = two_runs
    empty = str(tmp_path / 'empty')
    os.makedirs(empty)
    broken = _write_run(tmp_path, 'broken', [(40, dict(mDice=1.0))])
    with open(osp.join(broken, '20240101_120000', 'vis_data',
                       'scalars.json'), 'a') as f:
        f.write('{"mDice": 2.0, "st')  # killed while writing
    other = _write_run(tmp_path, 'other', [(40, dict(mDice=50.0))],
                       per_class=dict(classes=['x', 'y'], dice=[1, 1],
                                      iou=[1, 1]))
    no_key = _write_run(tmp_path, 'nokey', [(40, dict(mIoU=50.0))])
    with pytest.warns(UserWarning) as record:
        res = compare_runs([a, empty, broken, b, other, no_key],
                           str(tmp_path / 'out'), metric='mDice',
                           complexity=False, plot=False)
    assert [r['name'] for r in res['runs']] == ['a', 'b', 'other']
    reasons = {s['name']: s['reason'] for s in res['skipped']}
    assert 'neither' in reasons['empty'] and 'scalars.json' in \
        reasons['empty']
    assert 'line 2' in reasons['broken'] and 'truncated' in \
        reasons['broken']
    assert "no metric 'mDice'" in reasons['nokey'] and 'mIoU' in \
        reasons['nokey']
    assert "classes ['x', 'y']" in reasons['other']
    assert res['per_class']['dice']['runs'] == ['a', 'b']
    assert all(r.startswith("run '") for n, r in reasons.items()
               if n != 'other')
    assert len(record) >= 4
    text = open(tmp_path / 'out' / 'summary.md').read()
    assert '## Skipped' in text and '**broken** (run)' in text
    with pytest.raises(RunInputError, match="run 'empty'"):
        read_run(empty)
    with pytest.raises(RunInputError, match='no run can be compared'):
        compare_runs([empty], str(tmp_path / 'o2'), complexity=False)


def test_truncated_per_class_json(tmp_path):
    wd = _write_run(tmp_path, 'r', [(40, dict(mDice=1.0))])
    with open(osp.join(wd, 'val_scores.json'), 'w') as f:
        f.write('{"classes": ["a"], "dice": [0.')
    with pytest.raises(RunInputError, match=r"run 'r'.*val_scores.json.*"
                       'not valid JSON'):
        read_run(wd)


def test_resumed_run_continues_its_curve(tmp_path):
    wd = _write_run(tmp_path, 'r', [(40, dict(mDice=1.0)),
                                    (80, dict(mDice=2.0))])
    _write_run(tmp_path, 'r', [(80, dict(mDice=3.0)),
                               (120, dict(mDice=2.5))],
               stamp='20240102_090000')
    run = read_run(wd)
    assert [(r['step'], r['mDice']) for r in run['val']] == \
        [(40, 1.0), (80, 3.0), (120, 2.5)]
    assert best_and_last([(r['step'], r['mDice']) for r in run['val']]) == \
        dict(best=3.0, best_step=80, last=2.5, last_step=120)


def test_bootstrap_known_cases():
    assert bootstrap_ci([0.25] * 7) == (0.25, 0.25)
    # two cases: resample means are 0, 0.5, 1 with p = 1/4, 1/2, 1/4
    low, high = bootstrap_ci([0.0, 1.0], num_samples=4000, seed=1)
    assert (low, high) == (0.0, 1.0)
    values = np.random.default_rng(0).normal(0.1, 0.05, 50)
    ci = bootstrap_ci(values, seed=3)
    assert ci == bootstrap_ci(values, seed=3)  # deterministic
    # close to the normal interval mean +- 1.96 sd / sqrt(n)
    half = 1.96 * values.std(ddof=1) / math.sqrt(50)
    assert ci[0] == pytest.approx(values.mean() - half, abs=0.004)
    assert ci[1] == pytest.approx(values.mean() + half, abs=0.004)
    assert all(math.isnan(v) for v in bootstrap_ci([]))


def test_paired_comparison_counts():
    res = paired_comparison(['a', 'b', 'c', 'd'], [0.5, 0.5, 0.9, 0.1],
                            ['d', 'c', 'b', 'a', 'e'],
                            [float('nan'), 0.7, 0.5, 0.6, 1.0])
    assert res['ids'] == ['a', 'b', 'c']  # d not scored by B, e not by A
    assert res['deltas'] == pytest.approx([0.1, 0.0, -0.2])
    assert (res['wins'], res['ties'], res['losses']) == (1, 1, 1)
    assert res['mean_delta'] == pytest.approx(-0.1 / 3)
    hd = paired_comparison(['a', 'b'], [5.0, 3.0], ['a', 'b'], [4.0, 6.0],
                           rule='less')
    assert (hd['wins'], hd['losses']) == (1, 1)


def test_paired_from_per_case_csvs(tmp_path):
    header = ['case_id', 'WT_dice', 'TC_dice', 'ET_dice', 'WT_hd95',
              'TC_hd95', 'ET_hd95']
    a = _write_run(tmp_path, 'a', [(1, dict(mDice=1.0))], per_case=[
        header, ['c1', 0.9, 0.8, 0.7, 2.0, 3.0, 4.0],
        ['c2', 0.8, 0.6, '', 5.0, 6.0, 'nan']])
    b = _write_run(tmp_path, 'b', [(1, dict(mDice=1.0))], per_case=[
        header, ['c2', 0.9, 0.6, 0.5, 4.0, 7.0, 1.0],
        ['c1', 0.9, 0.7, 0.9, 1.0, 3.0, 5.0]])
    res = compare_runs([a, b], str(tmp_path / 'o'), complexity=False,
                       plot=False, num_samples=200)
    pc = res['per_class']
    assert pc['dice']['classes'] == ['WT', 'TC', 'ET']
    assert pc['dice']['values'][0] == pytest.approx([0.85, 0.7, 0.7])
    assert pc['hd95']['values'][1] == pytest.approx([2.5, 5.0, 3.0])
    assert pc['hd95']['best'] == [[False, True, False], [True, False, True]]
    paired = {p['column']: p for p in res['paired']}
    assert paired['WT_dice']['deltas'] == pytest.approx([0.0, 0.1])
    assert paired['ET_dice']['n'] == 1  # c2's ET is not scored by a
    assert (paired['WT_hd95']['wins'], paired['WT_hd95']['losses']) == \
        (2, 0)
    assert (paired['TC_hd95']['ties'], paired['TC_hd95']['losses']) == \
        (1, 1)
    text = open(tmp_path / 'o' / 'summary.md').read()
    assert '| a | b | WT_dice | 2 | +0.0500 |' in text


def test_pareto_front_hand_built():
    # (FLOPs, score): B dominates D; C is cheapest; A is best
    costs = [10, 5, 1, 6, 5, float('nan')]
    scores = [0.9, 0.8, 0.5, 0.7, 0.8, 1.0]
    assert pareto_front(costs, scores).tolist() == [
        True, True, True, False, True, False]
    # images/s: higher is better
    assert pareto_front([10, 20, 5], [0.5, 0.6, 0.9],
                        lower_cost_is_better=False).tolist() == \
        [False, True, True]


def test_config_diff():
    a = flatten_config(dict(model=dict(backbone=dict(depth=50),
                                       heads=[dict(type='A'), dict(x=1)]),
                            crop=(64, 64), work_dir='x', same=1))
    assert a['model.heads.0.type'] == 'A' and a['crop'] == [64, 64]
    b = flatten_config(dict(model=dict(backbone=dict(depth=101),
                                       heads=[dict(type='A')]),
                            crop=(64, 64), work_dir='y', same=1, new=None))
    rows = config_diff([a, b])
    assert [(r['key'], r['values'], r['missing']) for r in rows] == [
        ('model.backbone.depth', [50, 101], [False, False]),
        ('model.heads.1.x', [1, None], [False, True]),
        ('new', [None, None], [True, False]),
    ]


def test_zoo_lookup_on_shipped_metafile():
    z = zoo_lookup('segformer_mit-b0_8xb2-160k_ade20k-512x512')
    assert z['dataset'] == 'ADE20K'
    assert z['metrics']['mIoU'] == pytest.approx(37.41)
    assert z['batch_size'] == 16 and z['memory_gb'] == pytest.approx(2.1)
    assert z['hardware'] == '8x 1080 Ti GPUS'
    assert z['weights'].startswith('https://download.openmmlab.com/')
    assert z['metafile'].endswith(osp.join('segformer', 'metafile.yaml'))
    with pytest.raises(ZooLookupError, match='segformer_mit-b0_8xb2-160k_'
                       'ade20k-512x512'):
        zoo_lookup('segformer_mit-b0_8xb2-160k_ade20k-512x51')


def test_zoo_block_is_its_own(two_runs, tmp_path):
    res = compare_runs(two_runs, str(tmp_path / 'o'), complexity=False,
                       plot=False, zoo=[
                           'segformer_mit-b0_8xb2-160k_ade20k-512x512'])
    text = open(tmp_path / 'o' / 'summary.md').read()
    zoo_part = text.split('## MMSeg model zoo: ADE20K')[1]
    assert 'mIoU 37.41' in zoo_part and 'Per-class' not in zoo_part
    assert res['zoo'][0]['dataset'] == 'ADE20K'


# ---------------------------------------------------------------- readers
def _log_line(text):
    return f'2024/01/01 12:00:00 - mmengine - INFO - {text}\n'


def _mmseg_table(classes, columns):
    """The table as IoUMetric prints it (percent, 2 decimals)."""
    table = PrettyTable()
    table.add_column('Class', classes)
    for name, values in columns.items():
        table.add_column(name, [np.round(v * 100, 2) for v in values])
    return _log_line('per class results:') + _log_line(
        '\n' + table.get_string()) + _log_line(
            'Iter(val) [4/4]    aAcc: 50.0000  mIoU: 20.0000  '
            'data_time: 0.0100  time: 0.0200')


names = st.text(st.characters(whitelist_categories=('L', 'N'),
                              whitelist_characters=' -_.'),
                min_size=1, max_size=12).map(str.strip).filter(bool)
scores = st.one_of(st.floats(0, 1), st.just(float('nan')))


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(classes=st.lists(names, min_size=1, max_size=6, unique=True),
       data=st.data())
def test_parse_log_tables_round_trip(tmp_path, classes, data):
    cols = {k: data.draw(st.lists(scores, min_size=len(classes),
                                  max_size=len(classes)))
            for k in ('IoU', 'Acc', 'Dice')}
    ours = data.draw(st.lists(st.floats(0, 1), min_size=len(classes),
                              max_size=len(classes)))
    table = PrettyTable()
    table.add_column('Class', classes)
    table.add_column('Dice', [f'{v:.4f}' for v in ours])
    path = tmp_path / 'run.log'
    path.write_text(
        _log_line('Iter(train) [2/4]  lr: 1e-3  loss: 1.0') +
        _mmseg_table(classes, cols) + 'noise | not a table\n' +
        _log_line(f'per class results (3 images):\n{table.get_string()}'))
    tables = parse_log_tables(str(path))
    assert len(tables) == 2
    assert tables[0]['classes'] == classes
    for key, values in cols.items():
        expected = np.round(np.asarray(values) * 100, 2) / 100
        np.testing.assert_allclose(tables[0]['metrics'][key.lower()],
                                   expected, rtol=0, atol=1e-12)
    np.testing.assert_allclose(tables[1]['metrics']['dice'],
                               [float(f'{v:.4f}') for v in ours])


def test_parse_log_scalars(tmp_path):
    path = tmp_path / 'x.log'
    path.write_text(
        _log_line('Iter(train) [ 10/100]  lr: 1e-3  loss: 1.0') +
        _log_line('Iter(val) [1/4]    eta: 0:00:01  time: 0.02') +
        _log_line('Iter(val) [4/4]    aAcc: 50.0000  mIoU: 20.5000  '
                  'data_time: 0.0100  time: 0.0200') +
        _log_line('Iter(train) [20/100]  lr: 1e-3  loss: 0.5') +
        _log_line('Epoch(val) [2][4/4]    mDice: 0.7000  time: 0.1'))
    assert parse_log_scalars(str(path)) == [
        dict(aAcc=50.0, mIoU=20.5, step=10), dict(mDice=0.7, step=20)]


def test_read_scalars_errors(tmp_path):
    path = tmp_path / 'scalars.json'
    path.write_text('{"loss": 1, "step": 1}\n[1, 2]\n')
    with pytest.raises(RunInputError, match='line 2'):
        read_scalars(str(path))
    path.write_text('{"loss": 1, "step": 1}\n\n{"mIoU": 2, "step": 1}\n')
    assert len(read_scalars(str(path))) == 2


cells = st.one_of(st.floats(-1e6, 1e6, allow_nan=False), st.just(None))


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(st.lists(cells, min_size=3, max_size=3), max_size=8))
def test_read_per_case_csv_round_trip(tmp_path, rows):
    path = tmp_path / 'per_case.csv'
    header = ['case_id', 'WT_dice', 'TC_dice', 'ET_hd95']
    with open(path, 'w', newline='') as f:
        writer = csv.writer(f)
        writer.writerow(header)
        for i, row in enumerate(rows):
            writer.writerow([f'case{i}'] + ['' if v is None else repr(v)
                                            for v in row])
    data = read_per_case_csv(str(path))
    assert data['ids'] == [f'case{i}' for i in range(len(rows))]
    assert list(data['columns']) == header[1:]
    for j, name in enumerate(header[1:]):
        expected = [math.nan if r[j] is None else r[j] for r in rows]
        np.testing.assert_array_equal(data['columns'][name], expected)


@pytest.mark.parametrize('text, match', [
    ('id,WT_dice\nx,1\n', 'first column'),
    ('case_id,WT_dice\nx,1\nx,2\n', 'line 3.*one row per case'),
    ('case_id,WT_dice\nx,1,2\n', 'line 2'),
    ('case_id,WT_dice\nx,abc\n', "line 2, field 'WT_dice'"),
    ('case_id,WT_dice\nx,inf\n', 'finite'),
])
def test_read_per_case_csv_errors(tmp_path, text, match):
    path = tmp_path / 'p.csv'
    path.write_text(text)
    with pytest.raises(RunInputError, match=match):
        read_per_case_csv(str(path))


def test_per_case_csv_named_by_the_evaluator(tmp_path):
    wd = _write_run(tmp_path, 'r', [(1, dict(mDice=1.0))])
    with open(osp.join(wd, '20240101_120000', 'vis_data', 'config.py'),
              'a') as f:
        f.write("test_evaluator = dict(type='BraTSMetric', "
                "per_case_csv='eval/cases.csv')\n")
    os.makedirs(osp.join(wd, 'eval'))
    with open(osp.join(wd, 'eval', 'cases.csv'), 'w') as f:
        f.write('case_id,WT_dice,WT_hd95\nBraTS-001,0.5,7.5\n')
    run = read_run(wd)
    assert run['per_case']['source'] == osp.join(wd, 'eval', 'cases.csv')
    assert run['per_class']['metrics']['hd95'].tolist() == [7.5]


def test_per_case_csv_in_the_evaluator_out_dir(tmp_path):
    # BraTSMetric(out_dir=...) writes per_case.csv beside reports.csv,
    # whose first column is case_id too: per_case.csv is the one read.
    wd = _write_run(tmp_path, 'r', [(1, dict(mDice=1.0))])
    out = tmp_path / 'brats_out'
    out.mkdir()
    with open(osp.join(wd, '20240101_120000', 'vis_data', 'config.py'),
              'a') as f:
        f.write(f"test_evaluator = dict(type='BraTSMetric', "
                f"out_dir={str(out)!r})\n")
    (out / 'reports.csv').write_text('case_id,region,volume_cm3\n'
                                     'BraTS-001,WT,12.0\n')
    (out / 'per_case.csv').write_text('case_id,WT_dice,WT_hd95\n'
                                      'BraTS-001,0.25,3.5\n')
    run = read_run(wd)
    assert run['per_case']['source'] == str(out / 'per_case.csv')
    assert run['per_class']['metrics']['hd95'].tolist() == [3.5]
    assert run['per_class']['metrics']['dice'].tolist() == [0.25]


def test_cost_axis_option(two_runs, tmp_path):
    with pytest.raises(ValueError, match='needs the speed'):
        compare_runs(two_runs, str(tmp_path / 'o'), cost='speed',
                     complexity=False)
    with pytest.raises(ValueError, match="'auto', 'flops' or 'speed'"):
        compare_runs(two_runs, str(tmp_path / 'o'), cost='time',
                     complexity=False)


keys = st.text('abcdefghijklmnopqrstuvwxyz./_', min_size=1, max_size=8)
records = st.lists(st.dictionaries(
    keys, st.floats(allow_nan=False, allow_infinity=False), max_size=4).map(
        lambda d: dict(d, step=1)), max_size=6)


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(recs=records, cut=st.integers(1, 30))
def test_read_scalars_round_trip_and_truncation(tmp_path, recs, cut):
    path = tmp_path / 'scalars.json'
    text = ''.join(json.dumps(r) + '\n' for r in recs)
    path.write_text(text)
    assert read_scalars(str(path)) == recs
    # a last line cut short (a run killed while writing) names that line
    last = json.dumps(dict(loss=1.5, step=7))
    path.write_text(text + last[:min(cut, len(last) - 1)])
    with pytest.raises(RunInputError, match=f'line {len(recs) + 1}'):
        read_scalars(str(path))


def test_a_model_that_cannot_be_built_is_noted(tmp_path):
    wd = _write_run(tmp_path, 'r', [(1, dict(mDice=1.0))])
    path = osp.join(wd, '20240101_120000', 'vis_data', 'config.py')
    with open(path) as f:
        text = f.read().replace("'ResNetV1c'", "'NoSuchBackbone'")
    with open(path, 'w') as f:
        f.write(text)
    with pytest.warns(UserWarning, match="run 'r': no parameters / FLOPs"):
        res = compare_runs([wd], str(tmp_path / 'o'), plot=False)
    assert 'NoSuchBackbone' in res['runs'][0]['complexity']['error']
    assert res['runs'][0]['params'] is None
    assert '| r |' in open(tmp_path / 'o' / 'summary.md').read()
