# Copyright (c) mmseg_ext contributors. All rights reserved.


def pytest_configure(config):
    config.addinivalue_line(
        'markers', 'packaging: builds and installs the wheel (slow; select '
        'with -m packaging, skip with -m "not packaging")')
