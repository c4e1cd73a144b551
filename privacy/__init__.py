"""Personal data protection: field encryption at rest and masking for display and logs.

* :mod:`privacy.fieldcrypto`: AES-256-GCM encryption of sensitive fields (ID numbers, phone
  numbers, TOTP secrets) with key ids and rotation, and a blind index for equality searches.
* :mod:`privacy.masking`: masked forms of ID numbers, phones and names, and a log filter that
  scrubs them from every log line.
"""
