"""Backups, archive packages and retention (clause 9.5; GB/T 18894 in spirit).

* :mod:`archive.backup`: one tar file of the whole object store, restored only if every
  object matches the backup's own manifest; :func:`archive.backup.verify_all` afterwards.
* :mod:`archive.package`: a self-contained, checked archive package (zip) of one inspection.
* :mod:`archive.retention`: retention periods per approval item and a disposal report
  (report only: nothing is ever deleted automatically).
"""
