# Copyright (c) mmseg_ext contributors. All rights reserved.
"""``mmseg_ext::path/to/config.py``: configs shipped in the package.

The package ships its configs and tools in ``mmseg_ext/.mim/`` (links to the
repository's ``configs/`` and ``tools/`` in a checkout, copies in a wheel;
see ``setup.py``), as OpenMMLab packages do. mmengine 0.10 resolves
``pkg::cfg`` in ``_base_`` (and ``Config.fromfile``) only for the modules
named in ``mmengine.config.utils.MODULE2PACKAGE``;
:func:`register_config_scope`, run on ``import mmseg_ext``, adds this
package there and makes these configs build into mmseg's registries.
"""
import os.path as osp

PACKAGE_DIR = osp.dirname(osp.abspath(__file__))
#: The package's ``.mim`` folder: ``configs/``, ``tools/``,
#: ``model-index.yml``.
MIM_DIR = osp.join(PACKAGE_DIR, '.mim')

_SCOPE = 'mmseg_ext'
_APPLIED = False


def register_config_scope() -> None:
    """Let mmengine load ``mmseg_ext::`` configs (idempotent).

    1. ``MODULE2PACKAGE['mmseg_ext'] = 'mmseg_ext'`` (module name ->
       distribution name), the table mmengine checks before resolving
       ``pkg::``.
    2. mmengine finds the package folder with ``get_installed_path``, which
       joins the distribution's location with the module name. That is the
       ``site-packages`` folder for a PEP 660 editable install (the
       ``.dist-info`` is there, the code is in the checkout), so
       ``mmseg_ext::`` would point into an empty folder; for this package
       only, the folder of the imported ``mmseg_ext`` is returned instead
       (the one running, wherever it was installed). Other packages go to
       mmengine's function unchanged.
    3. mmengine tags the dicts of a config inherited through ``pkg::`` with
       ``_scope_='pkg'`` and builds them from the registries of that scope.
       This package registers into mmseg's registries (``default_scope =
       'mmseg'``) and has none of its own, so a built dict tagged
       ``mmseg_ext`` would fall back to mmengine's root registry, which does
       not know mmseg's modules. The tag is read as ``mmseg`` instead: the
       config is parsed exactly as the same file inherited by path.
    """
    global _APPLIED
    if _APPLIED:
        return
    from mmengine.config import config as config_module
    from mmengine.config.utils import MODULE2PACKAGE

    MODULE2PACKAGE.setdefault(_SCOPE, _SCOPE)

    original_installed_path = config_module.get_installed_path

    def get_installed_path(package: str) -> str:
        if package == MODULE2PACKAGE[_SCOPE]:
            return PACKAGE_DIR
        return original_installed_path(package)

    config_module.get_installed_path = get_installed_path

    original_get_cfg_path = config_module.Config._get_cfg_path

    def _get_cfg_path(cfg_path: str, filename: str):
        path, scope = original_get_cfg_path(cfg_path, filename)
        return path, 'mmseg' if scope == _SCOPE else scope

    config_module.Config._get_cfg_path = staticmethod(_get_cfg_path)
    _APPLIED = True
