# The tiny config plus the tools tests' hooks
# (tests/test_tools/tools_test_hooks.py, needs `tests/test_tools` on
# PYTHONPATH): a crash after N iterations
# (`--cfg-options custom_hooks.0.kill_after_iter=N`) and a record of the run.
_base_ = './tiny_segformer_synthimb-64x64.py'
custom_imports = dict(
    imports=['mmseg_ext', 'tools_test_hooks'], allow_failed_imports=False)
custom_hooks = [
    dict(type='KillAfterIterHook', kill_after_iter=None),
    dict(type='RecordRunHook'),
]
