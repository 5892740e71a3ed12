# Copyright (c) mmseg_ext contributors. All rights reserved.
"""The BraTS tumour-report reader under the database's names.

The report format (``{out_dir}/reports/{case_id}.json`` of
``BraTSMetric``) has one validator,
:func:`mmseg_ext.evaluation.brats_report.validate_tumour_report`; this
module keeps the names the database code and its users import:

=========================  =================================================
here                       :mod:`mmseg_ext.evaluation.brats_report`
=========================  =================================================
:func:`validate_report`    :func:`validate_tumour_report`
:func:`read_report`        :func:`read_tumour_report`
:func:`load_report_dir`    :func:`load_report_dir`
:class:`BraTSReportError`  :class:`TumourReportError` (the same class, so
                           ``except`` on either name catches both)
``REPORT_SOURCES``         ``SOURCES``
``_NAME_LEN``              ``CASE_ID_MAX_LEN`` (also the longest run name)
=========================  =================================================
"""
from mmseg_ext.datasets.brats.labels import REGIONS
from mmseg_ext.evaluation.brats_report import (CASE_ID_MAX_LEN, HEMISPHERES,
                                               SOURCES, TumourReportError,
                                               load_report_dir,
                                               read_tumour_report,
                                               validate_tumour_report)

__all__ = [
    'REGIONS', 'REPORT_SOURCES', 'HEMISPHERES', 'BraTSReportError',
    'validate_report', 'read_report', 'load_report_dir'
]

REPORT_SOURCES = SOURCES
# Longest run name / case id the tables hold (VARCHAR).
_NAME_LEN = CASE_ID_MAX_LEN

#: A report (or a run description of the export) that does not follow the
#: format: names the file (or report) and the field.
BraTSReportError = TumourReportError
validate_report = validate_tumour_report
read_report = read_tumour_report
