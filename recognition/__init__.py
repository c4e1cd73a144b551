"""Reading what the camera shows: OCR on the server's CPU, licence fields, comparisons.

``engine`` wraps the OCR model (RapidOCR with the PP-OCRv6 models its wheel carries);
``licence`` turns OCR lines into the fields of a 营业执照; ``compare`` holds them against
the application; ``recognizer`` runs it all off the event loop after a capture.
"""
