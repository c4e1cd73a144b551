"""The OpenAPI 3.1 document of the REST API, served at /api/v1/openapi.json.

``tests/signaling/test_openapi.py`` checks that every route the app serves under /api/v1
is documented here (and nothing else), and schemathesis checks the responses against it.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from .routes import PUBLIC, Route, get

JSON = "application/json"
PROBLEM = "application/problem+json"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _problems(*statuses: int) -> dict[str, Any]:
    return {
        str(status): {"description": _PROBLEM_TEXT[status], "content": {PROBLEM: {"schema": _ref("Problem")}}}
        for status in statuses
    }


_PROBLEM_TEXT = {
    400: "malformed request",
    401: "missing or bad API key",
    403: "the key lacks the permission",
    404: "no such resource",
    409: "conflict with the current state",
    413: "body too large",
    415: "unsupported content type",
    422: "validation failed",
    421: "another node serves this inspection's session: send it again to `node_url` (docs/nodes.md)",
    429: "rate limited",
    503: "not available here",
}

def _DATE(name: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": True, "schema": {"type": "string", "format": "date"}}


_ID = {"name": "id", "in": "path", "required": True, "schema": {"type": "string", "minLength": 1}}
_NULLABLE_STR = {"type": ["string", "null"]}
_YEAR = {"name": "year", "in": "path", "required": True, "schema": {"type": "integer", "minimum": 1000, "maximum": 9999}}
_TIME = {"type": ["string", "null"], "format": "date-time"}

_NAMES = {"type": "array", "items": {"type": "string"}}
_COUNT = {"type": "integer", "minimum": 1}

SCHEMAS: dict[str, Any] = {
    "ProtocolConstants": {
        "type": "object",
        "required": ["roles", "source_role", "limits", "open_statuses", "timer_phases", "prudent_lists", "webhooks"],
        "properties": {
            "roles": {
                "type": "object",
                "required": ["link", "staff", "staff_exclusive"],
                "properties": {"link": _NAMES, "staff": _NAMES, "staff_exclusive": {"type": "array", "items": _NAMES}},
            },
            "source_role": {"type": "object", "additionalProperties": {"type": "string"}},
            "limits": {
                "type": "object",
                "required": ["event_bytes", "upload_event_bytes", "events_per_second", "text_chars", "signature_png_bytes", "signature_points", "photo_bytes", "rating_comment_chars", "drawing_shapes", "drawing_text_chars", "camera_zoom_max"],
                "additionalProperties": _COUNT,
            },
            "open_statuses": _NAMES,
            "timer_phases": _NAMES,
            "prudent_lists": _NAMES,
            "webhooks": {"type": "object", "required": ["states", "events"], "properties": {"states": _NAMES, "events": _NAMES}},
        },
    },
    "Problem": {
        "type": "object",
        "required": ["type", "title", "status", "detail"],
        "properties": {
            "type": {"type": "string"},
            "title": {"type": "string"},
            "status": {"type": "integer"},
            "detail": {"type": "string"},
            "errors": {
                "type": "array",
                "items": {"type": "object", "required": ["field", "message"], "properties": {"field": {"type": "string"}, "message": {"type": "string"}}},
            },
        },
    },
    "Applicant": {
        "type": "object",
        "additionalProperties": False,
        "required": ["name", "kind", "id_type", "id_number"],
        "properties": {
            "name": {"type": "string", "minLength": 1, "maxLength": 200},
            "kind": {"enum": ["natural_person", "legal_person", "other_org"]},
            "id_type": {"enum": ["USCC", "RESIDENT_ID", "PASSPORT", "OTHER"]},
            "id_number": {"type": "string", "minLength": 1, "maxLength": 64, "description": "GB 32100 / GB 11643 check digits are verified"},
            "contact_name": {"type": "string", "maxLength": 100},
            "contact_phone": {"type": "string", "maxLength": 32},
        },
    },
    "Site": {
        "type": "object",
        "additionalProperties": False,
        "required": ["address"],
        "properties": {
            "address": {"type": "string", "minLength": 1, "maxLength": 300},
            "lat": {"type": "number", "minimum": -90, "maximum": 90},
            "lon": {"type": "number", "minimum": -180, "maximum": 180},
            "radius_m": {"type": "number", "minimum": 1, "maximum": 100000},
        },
    },
    "CheckpointRequest": {
        "type": "object",
        "additionalProperties": False,
        "required": ["code", "title"],
        "properties": {
            "code": {"type": "string", "pattern": "^[a-z0-9][a-z0-9_.-]{0,63}$"},
            "title": {"type": "string", "minLength": 1, "maxLength": 200},
            "required": {"type": "boolean"},
        },
    },
    "NewInspection": {
        "type": "object",
        "additionalProperties": False,
        "required": ["case_no", "item_code", "item_name", "applicant", "site"],
        "properties": {
            "case_no": {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9_./-]{0,63}$"},
            "item_code": {"type": "string", "pattern": "^[a-z0-9][a-z0-9_.-]{0,63}$"},
            "item_name": {"type": "string", "minLength": 1, "maxLength": 200},
            "applicant": _ref("Applicant"),
            "site": _ref("Site"),
            "checkpoints": {"type": "array", "minItems": 1, "maxItems": 100, "items": _ref("CheckpointRequest")},
            "callback_url": {"type": "string", "format": "uri"},
            "scheduled_at": {"type": "string", "format": "date-time"},
            "inspector_user_id": {"type": "string", "description": "an enabled staff account holding entry permission (else 422)"},
        },
    },
    "Created": {
        "type": "object",
        "required": ["id", "case_no", "status", "inspector_url", "applicant_url", "applicant_qr_png", "expires_at"],
        "properties": {
            "id": {"type": "string"},
            "case_no": {"type": "string"},
            "status": {"const": "scheduled"},
            "inspector_url": {"type": "string"},
            "applicant_url": {"type": "string"},
            "observer_url": {"type": "string"},
            "applicant_qr_png": {"type": "string", "pattern": "^data:image/png;base64,"},
            "expires_at": {"type": "string", "format": "date-time"},
        },
    },
    "Verdict": {
        "type": ["object", "null"],
        "properties": {
            "outcome": {"enum": ["pass", "fail", "manual_review"]},
            "reasons": {"type": "array"},
            "rules_version": _NULLABLE_STR,
            "decided_at": _TIME,
        },
    },
    "Inspection": {
        "type": "object",
        "required": ["id", "case_no", "status", "started_at", "ended_at", "duration_s", "participants", "checkpoints", "verdict", "manifest"],
        "properties": {
            "id": {"type": "string"},
            "case_no": {"type": "string"},
            "item_code": {"type": "string"},
            "item_name": {"type": "string"},
            "status": {"enum": ["scheduled", "live", "interrupted", "ended", "judged", "reviewed", "cancelled", "expired"]},
            "end_reason": {"enum": ["ended", "abandoned", "cancelled", None]},
            "inspector_user_id": _NULLABLE_STR,
            "inspector_name": _NULLABLE_STR,
            "scheduled_at": _TIME,
            "created_at": {"type": "string"},
            "expires_at": {"type": "string"},
            "started_at": _TIME,
            "ended_at": _TIME,
            "duration_s": {"type": ["number", "null"]},
            "cancel_reason": _NULLABLE_STR,
            "applicant": {"type": "object", "description": "ID and phone numbers masked"},
            "site": {"type": "object"},
            "participants": {"type": "array"},
            "checkpoints": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["code", "title", "required", "captured", "evidence"],
                    "properties": {
                        "code": {"type": "string"},
                        "title": {"type": "string"},
                        "required": {"type": "boolean"},
                        "captured": {"type": "boolean"},
                        "evidence": {"type": "array", "items": {"type": "string"}},
                    },
                },
            },
            "verdict": _ref("Verdict"),
            "manifest": {
                "type": ["object", "null"],
                "properties": {"sha256": {"type": "string"}, "url": {"type": "string"}},
            },
            "recognitions": {
                "type": "array",
                "description": "what was read from captures (CONTRACT.md, Additions 2026-12: Recognitions)",
                "items": {
                    "type": "object",
                    "required": ["kind", "evidence_key", "fields", "matches", "at"],
                    "properties": {
                        "kind": {"type": "string", "examples": ["business_licence", "shop_sign"]},
                        "evidence_key": {"type": "string"},
                        "fields": {"type": "object"},
                        "matches": {"type": "object", "additionalProperties": {"type": ["boolean", "null"]}},
                        "at": _TIME,
                        "result": {"enum": ["matched", "differs", "unreadable"]},
                        "checkpoint": {"type": "string"},
                    },
                },
            },
        },
    },
    "InspectionPage": {
        "type": "object",
        "required": ["items", "next_cursor"],
        "properties": {"items": {"type": "array", "items": _ref("Inspection")}, "next_cursor": _NULLABLE_STR},
    },
    "Cancel": {
        "type": "object",
        "additionalProperties": False,
        "required": ["reason"],
        "properties": {"reason": {"type": "string", "minLength": 1, "maxLength": 500}},
    },
    "Assign": {
        "type": "object",
        "additionalProperties": False,
        "required": ["inspector_user_id"],
        "properties": {"inspector_user_id": {"type": "string", "minLength": 1, "maxLength": 64}},
    },
    "Keys": {
        "type": "object",
        "required": ["keys"],
        "properties": {
            "keys": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["kid", "alg", "pem"],
                    "properties": {
                        "kid": {"type": "string"}, "alg": {"enum": ["Ed25519", "SM2"]}, "pem": {"type": "string"},
                        "jwk": {
                            "type": "object",
                            "description": "The key as a JWK (RFC 7517). Ed25519: kty OKP, crv Ed25519, alg EdDSA. SM2: kty EC, crv SM2, "
                            "x and y the point's 32-byte coordinates (base64url), alg SM2SM3 (SM2 with SM3 and the default distinguishing ID "
                            "1234567812345678; no IANA-registered JOSE name exists, see docs/evidence.md)",
                        }, "created_at": {"type": "string"}, "current": {"type": "boolean"},
                    },
                },
            }
        },
    },
    "Review": {
        "type": "object",
        "additionalProperties": False,
        "required": ["outcome"],
        "properties": {"outcome": {"enum": ["pass", "fail"]}, "comment": {"type": "string", "maxLength": 2000}},
    },
    "Decision": {
        "type": "object",
        "additionalProperties": False,
        "required": ["document_name", "document_no", "authority", "licence_category", "licence_content", "decision_date"],
        "properties": {
            "document_name": {"type": "string"},
            "document_no": {"type": "string"},
            "authority": {"type": "string"},
            "licence_category": {"type": "string"},
            "licence_content": {"type": "string"},
            "decision_date": {"type": "string", "format": "date"},
        },
    },
    "Withdrawal": {"type": "object", "additionalProperties": False, "required": ["reason"], "properties": {"reason": {"type": "string", "minLength": 1}}},
    "Rating": {
        "type": "object",
        "additionalProperties": False,
        "required": ["score"],
        "properties": {"score": {"type": "integer", "minimum": 1, "maximum": 5}, "comment": {"type": "string"}, "dimensions": {"type": "object"}},
    },
    "Login": {
        "type": "object",
        "additionalProperties": False,
        "required": ["user_id", "password", "totp"],
        "properties": {"user_id": {"type": "string"}, "password": {"type": "string"}, "totp": {"type": "string"}},
    },
    "Me": {"type": "object", "required": ["user"], "properties": {"user": {"type": "object"}}},
    "PasswordChange": {
        "type": "object",
        "additionalProperties": False,
        "required": ["old_password", "new_password"],
        "properties": {"old_password": {"type": "string"}, "new_password": {"type": "string"}},
    },
    "PasswordReset": {
        "type": "object",
        "additionalProperties": False,
        "required": ["password"],
        "properties": {"password": {"type": "string"}, "new_totp": {"type": "boolean"}},
    },
    "Roles": {
        "type": "object",
        "additionalProperties": False,
        "required": ["roles"],
        "properties": {"roles": {"type": "array", "items": {"enum": ["inspector", "reviewer", "approver", "auditor", "admin"]}}},
    },
    "NewAccount": {
        "type": "object",
        "additionalProperties": False,
        "required": ["user_id", "real_name", "roles", "password"],
        "properties": {
            "user_id": {"type": "string"},
            "real_name": {"type": "string"},
            "roles": {"type": "array", "items": {"enum": ["inspector", "reviewer", "approver", "auditor", "admin"]}},
            "password": {"type": "string"},
            "id_number": {"type": "string"},
            "phone": {"type": "string"},
        },
    },
    "CalendarArrangement": {
        "type": "object",
        "additionalProperties": False,
        "required": ["year", "source", "holidays"],
        "description": "One year's State Council holiday arrangement (docs/calendar.md); every date in `year`",
        "properties": {
            "year": {"type": "integer", "minimum": 2000, "maximum": 2100},
            "source": {"type": "string", "minLength": 1, "maxLength": 500, "description": "the notice's title and number"},
            "published_on": {"type": "string", "format": "date"},
            "url": {"type": "string", "maxLength": 500},
            "notes": {"type": "string", "maxLength": 4000},
            "holidays": {
                "type": "array",
                "minItems": 1,
                "items": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["name"],
                    "properties": {
                        "name": {"type": "string", "minLength": 1, "maxLength": 100},
                        "date": {"type": "string", "format": "date"},
                        "from": {"type": "string", "format": "date"},
                        "to": {"type": "string", "format": "date"},
                    },
                },
            },
            "makeup_working_days": {
                "type": "array",
                "items": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["date"],
                    "properties": {"date": {"type": "string", "format": "date"}, "name": {"type": "string", "maxLength": 100}},
                },
            },
        },
    },
    "CalendarYear": {
        "type": "object",
        "required": ["year", "from", "source", "arrangement", "versions"],
        "properties": {
            "year": {"type": "integer"},
            "from": {"enum": ["imported", "package"]},
            "source": {"type": "string"},
            "version": {"type": "integer"},
            "imported_at": {"type": "string"},
            "imported_by": {"type": "string"},
            "notice": {"type": "string"},
            "overrides": {"type": "string"},
            "arrangement": _ref("CalendarArrangement"),
            "versions": {"type": "array", "items": {"type": "object"}},
        },
    },
    "CalendarImported": {
        "type": "object",
        "required": ["year", "version", "imported_at", "imported_by", "notice", "replaced_version", "arrangement"],
        "properties": {
            "year": {"type": "integer"},
            "version": {"type": "integer"},
            "imported_at": {"type": "string"},
            "imported_by": {"type": "string"},
            "notice": {"type": "string"},
            "replaced_version": {"type": ["integer", "null"]},
            "arrangement": _ref("CalendarArrangement"),
        },
    },
    "Verification": {
        "type": "object",
        "required": ["ok", "problems"],
        "properties": {
            "ok": {"type": "boolean"}, "first_problem": _NULLABLE_STR, "problems": {"type": "array"},
            "timestamp": {**_NULLABLE_STR, "description": "genTime of the RFC 3161 token over this manifest, or 'pending'"},
            "timestamp_trust": {
                "enum": ["trusted", "untrusted", "failed", None],
                "description": "trusted: the token's signature holds and its TSA certificate chains to the configured TSA CA "
                "(TAKAN_TSA_CA_FILE); untrusted: it covers this manifest and its signature holds, but no TSA CA is configured, "
                "so nothing says the TSA is a real one (not a failure); failed: a problem on manifest.tsr says why (signature "
                "invalid, chain not trusted, another manifest); null: no token yet",
            },
            "timestamp_tsa": {**_NULLABLE_STR, "description": "subject of the TSA's certificate"},
            "timestamp_ca": {**_NULLABLE_STR, "description": "subject of the configured CA certificate the TSA chains to"},
            "timestamp_note": {**_NULLABLE_STR, "description": "why the timestamp is untrusted, in words"},
        },
    },
}


def _ok(description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {JSON: {"schema": {"type": "object"}}}}


def _json(schema: str, description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {JSON: {"schema": _ref(schema)}}}


def _body(schema: str) -> dict[str, Any]:
    return {"required": True, "content": {JSON: {"schema": _ref(schema)}}}


PATHS: dict[str, Any] = {
    "/api/v1/inspections": {
        "post": {
            "summary": "Ask for an inspection",
            "operationId": "createInspection",
            "parameters": [{"name": "Idempotency-Key", "in": "header", "required": False, "schema": {"type": "string", "maxLength": 255}}],
            "requestBody": _body("NewInspection"),
            "responses": {"201": {**_json("Created", "created (or replayed for the same Idempotency-Key and body)"),
                                  "headers": {"Location": {"description": "the new record: /api/v1/inspections/{id}",
                                                           "schema": {"type": "string"}}}},
                          **_problems(400, 401, 403, 409, 413, 415, 422)},
        },
        "get": {
            "summary": "List inspections",
            "operationId": "listInspections",
            "parameters": [
                {"name": "case_no", "in": "query", "schema": {"type": "string"}},
                {"name": "status", "in": "query", "schema": {"type": "string"}, "description": "comma-separated statuses"},
                {"name": "from", "in": "query", "schema": {"type": "string", "format": "date-time"}},
                {"name": "to", "in": "query", "schema": {"type": "string", "format": "date-time"}},
                {"name": "cursor", "in": "query", "schema": {"type": "string"}},
                {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 200}},
            ],
            "responses": {"200": _json("InspectionPage"), **_problems(401, 403, 422)},
        },
    },
    "/api/v1/inspections/{id}": {
        "get": {"summary": "One inspection", "operationId": "getInspection", "parameters": [_ID], "responses": {"200": _json("Inspection"), **_problems(401, 403, 404, 422)}},
    },
    "/api/v1/inspections/{id}/cancel": {
        "post": {
            "summary": "Cancel an open inspection",
            "operationId": "cancelInspection",
            "parameters": [_ID],
            "requestBody": _body("Cancel"),
            "responses": {"200": _json("Inspection"), **_problems(400, 401, 403, 404, 409, 413, 415, 421, 422)},
        },
    },
    "/api/v1/inspections/{id}/assign": {
        "post": {
            "summary": "Name or change the inspector of an inspection that has not ended",
            "operationId": "assignInspection",
            "parameters": [_ID],
            "requestBody": _body("Assign"),
            "responses": {"200": _json("Inspection"), **_problems(400, 401, 403, 404, 409, 413, 415, 421, 422)},
        },
    },
    "/api/v1/inspections/{id}/links": {
        "get": {
            "summary": "The participants' links of an open inspection (its inspector, a supervisor or the approval core)",
            "operationId": "getInspectionLinks",
            "parameters": [_ID],
            "responses": {
                "200": {"description": "links", "content": {JSON: {"schema": {"type": "object", "properties": {
                    "inspector_url": {"type": "string"}, "applicant_url": {"type": "string"},
                    "applicant_qr_png": {"type": "string"}, "expires_at": {"type": "string"}}}}}},
                **_problems(401, 403, 404, 409),
            },
        },
    },
    "/api/v1/inspections/{id}/reschedule": {
        "post": {
            "summary": "A new time for a scheduled inspection; its links run from then",
            "operationId": "rescheduleInspection",
            "parameters": [_ID],
            "requestBody": {"required": True, "content": {JSON: {"schema": {"type": "object", "additionalProperties": False, "required": ["scheduled_at"],
                                                                             "properties": {"scheduled_at": {"type": "string", "format": "date-time"}}}}}},
            "responses": {"200": _json("Inspection"), **_problems(400, 401, 403, 404, 409, 413, 415, 421, 422)},
        },
    },
    "/api/v1/inspections/{id}/observers": {
        "post": {
            "summary": "Invite a named observer (a staff user_id or a guest's name) with their own expiring link",
            "operationId": "inviteObserver",
            "parameters": [_ID],
            "requestBody": {"required": True, "content": {JSON: {"schema": {"type": "object", "additionalProperties": False, "properties": {
                "name": {"type": "string", "maxLength": 100}, "user_id": {"type": "string"}, "ttl_hours": {"type": "number"}}}}}},
            "responses": {"201": {"description": "the observer's link", "content": {JSON: {"schema": {"type": "object", "properties": {
                "observer_url": {"type": "string"}, "expires_at": {"type": "string"}, "name": {"type": "string"}, "kind": {"enum": ["staff", "guest"]}}}}}},
                **_problems(400, 401, 403, 404, 409, 413, 415, 421, 422)},
        },
    },
    "/api/v1/inspections/{id}/invite": {
        "post": {
            "summary": "Text the applicant their link (the SMS gateway, or the log); body {}",
            "operationId": "inviteApplicant",
            "parameters": [_ID],
            "requestBody": {"required": True, "content": {JSON: {"schema": {"type": "object", "additionalProperties": False}}}},
            "responses": {
                "200": {"description": "sent", "content": {JSON: {"schema": {"type": "object", "properties": {"ok": {"const": True}, "sent_to": {"type": "string"}}}}}},
                **_problems(400, 401, 403, 404, 409, 413, 415, 421, 422, 503),
            },
        },
    },
    "/api/v1/inspections/{id}/manifest": {
        "get": {
            "summary": "manifest.json exactly as signed",
            "operationId": "getManifest",
            "parameters": [_ID],
            "responses": {"200": {"description": "RFC 8785 canonical JSON", "content": {JSON: {"schema": {"type": "object"}}}}, **_problems(401, 403, 404)},
        },
    },
    "/api/v1/inspections/{id}/manifest.sig": {
        "get": {
            "summary": "The 64-byte Ed25519 signature of manifest.json",
            "operationId": "getManifestSignature",
            "parameters": [_ID],
            "responses": {"200": {"description": "raw signature", "content": {"application/octet-stream": {"schema": {"type": "string", "contentMediaType": "application/octet-stream"}}}}, **_problems(401, 403, 404)},
        },
    },
    "/api/v1/inspections/{id}/manifest.sm2.sig": {
        "get": {
            "summary": "The DER SM2 signature (SM3, default distinguishing ID) of manifest.json",
            "operationId": "getManifestSm2Signature",
            "parameters": [_ID],
            "responses": {"200": {"description": "DER signature", "content": {"application/octet-stream": {"schema": {"type": "string", "contentMediaType": "application/octet-stream"}}}}, **_problems(401, 403, 404)},
        },
    },
    "/api/v1/inspections/{id}/manifest.tsr": {
        "get": {
            "summary": "The RFC 3161 timestamp response over the current manifest.json (404 'pending' until the TSA answers)",
            "operationId": "getManifestTimestamp",
            "parameters": [_ID],
            "responses": {"200": {"description": "DER TimeStampResp", "content": {"application/timestamp-reply": {"schema": {"type": "string", "contentMediaType": "application/timestamp-reply"}}}}, **_problems(401, 403, 404)},
        },
    },
    "/api/v1/inspections/{id}/record.pdf": {
        "get": {
            "summary": "The 现场勘验笔录 (inspection record) PDF of an ended inspection; stored as evidence and sealed on first request",
            "operationId": "getInspectionRecordPdf",
            "parameters": [_ID],
            "responses": {"200": {"description": "the PDF", "content": {"application/pdf": {"schema": {"type": "string", "contentMediaType": "application/pdf"}}}}, **_problems(401, 403, 404, 409)},
        },
    },
    "/api/v1/inspections/{id}/objects/{key}": {
        "get": {
            "summary": "One evidence object (every read is audited)",
            "operationId": "getObject",
            "parameters": [_ID, {"name": "key", "in": "path", "required": True, "schema": {"type": "string"}, "description": "key relative to the inspection, may contain /"}],
            "responses": {"200": {"description": "the object's bytes", "content": {"*/*": {"schema": {}}}}, **_problems(401, 403, 404)},
        },
    },
    "/api/v1/inspections/{id}/verification": {
        "get": {"summary": "Verify the evidence now", "operationId": "verifyInspection", "parameters": [_ID], "responses": {"200": _json("Verification"), **_problems(401, 403, 404)}},
    },
    "/api/v1/keys": {
        "get": {"summary": "Manifest signing public keys (PEM and JWK)", "operationId": "listKeys", "security": [], "responses": {"200": _json("Keys")}},
    },
    "/api/v1/session/photos": {
        "post": {
            "summary": "The applicant uploads a photo (link token in X-Takan-Token)",
            "operationId": "uploadPhoto",
            "security": [],
            "parameters": [{"name": "X-Takan-Token", "in": "header", "required": True, "schema": {"type": "string"}}],
            "requestBody": {
                "required": True,
                "content": {
                    "multipart/form-data": {
                        "schema": {
                            "type": "object",
                            "required": ["file", "checkpoint"],
                            "properties": {
                                "file": {"type": "string", "contentMediaType": "image/jpeg"},
                                "checkpoint": {"type": "string"},
                                "taken_at": {"type": "string"},
                                "lat": {"type": "string"},
                                "lon": {"type": "string"},
                                "accuracy_m": {"type": "string"},
                                "held": {"type": "string", "enum": ["1"]},
                                "upload_id": {"type": "string", "pattern": "^[A-Za-z0-9_-]{8,64}$", "description": "the same for every try of one photo: a retry of one already logged is answered as the first and not stored again"},
                            },
                        }
                    }
                },
            },
            "responses": {"201": {"description": "stored and logged", "content": {JSON: {"schema": {"type": "object"}}}}, **_problems(400, 401, 403, 404, 409, 413, 415)},
        },
    },
    "/api/v1/webhooks": {
        "get": {
            "summary": "Webhook deliveries (admin)",
            "operationId": "listDeliveries",
            "description": "The newest `limit` deliveries (of `state`, if given) enqueued before the cursor `before`, in enqueue order; `next_before` is the cursor of the older page (null when there is none) and `total` the number in the state.",
            "parameters": [
                {"name": "state", "in": "query", "schema": {"enum": ["pending", "delivered", "failed"]}},
                {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100}},
                {"name": "before", "in": "query", "schema": {"type": "integer", "minimum": 0}},
            ],
            "responses": {"200": {"description": "stats and a page of deliveries", "content": {JSON: {"schema": {"type": "object", "required": ["stats", "total", "items", "next_before"]}}}}, **_problems(401, 403, 422)},
        },
    },
    "/api/v1/webhooks/{id}": {
        "get": {"summary": "One delivery (admin)", "operationId": "getDelivery", "parameters": [_ID], "responses": {"200": {"description": "the delivery", "content": {JSON: {"schema": {"type": "object"}}}}, **_problems(401, 403, 404)}},
    },
    "/api/v1/webhooks/{id}/resend": {
        "post": {"summary": "Send a delivery again (admin)", "operationId": "resendDelivery", "parameters": [_ID], "responses": {"202": {"description": "queued", "content": {JSON: {"schema": {"type": "object"}}}}, **_problems(401, 403, 404, 409)}},
    },
    "/api/v1/auth/login": {
        "post": {
            "summary": "Staff login: password and TOTP code (sets the takan_session cookie)",
            "operationId": "login",
            "security": [],
            "requestBody": _body("Login"),
            "responses": {"200": _json("Me"), **_problems(400, 401, 403, 422, 429)},
        },
    },
    "/api/v1/auth/oidc/start": {
        "get": {
            "summary": "Staff login through the configured OpenID Connect provider (redirect)",
            "operationId": "oidcStart",
            "security": [],
            "parameters": [{"name": "next", "in": "query", "schema": {"type": "string"}}],
            "responses": {"302": {"description": "to the provider"}, **_problems(404, 503)},
        },
    },
    "/api/v1/auth/oidc/callback": {
        "get": {
            "summary": "The provider's redirect back: opens a staff session",
            "operationId": "oidcCallback",
            "security": [],
            "parameters": [{"name": "code", "in": "query", "schema": {"type": "string"}}, {"name": "state", "in": "query", "schema": {"type": "string"}}],
            "responses": {"302": {"description": "logged in; to the page asked for"}, **_problems(400, 401, 403, 404, 503)},
        },
    },
    "/api/v1/auth/logout": {"post": {"summary": "End this session", "operationId": "logout", "responses": {"200": _ok(), **_problems(401, 403)}}},
    "/api/v1/auth/logout-all": {"post": {"summary": "End every session of this account", "operationId": "logoutAll", "responses": {"200": _ok(), **_problems(401, 403)}}},
    "/api/v1/auth/me": {"get": {"summary": "The logged-in staff member", "operationId": "me", "responses": {"200": _json("Me"), **_problems(401, 403)}}},
    "/api/v1/auth/password": {
        "post": {"summary": "Change one's password", "operationId": "changePassword", "requestBody": _body("PasswordChange"), "responses": {"200": _ok(), **_problems(400, 401, 403, 422)}},
    },
    "/api/v1/admin/accounts": {
        "get": {"summary": "Staff accounts (admin)", "operationId": "listAccounts", "responses": {"200": _ok(), **_problems(401, 403)}},
        "post": {"summary": "Create a staff account (admin); returns the TOTP URI once", "operationId": "createAccount", "requestBody": _body("NewAccount"), "responses": {"201": _ok("created"), **_problems(400, 401, 403, 409, 422)}},
    },
    **{
        f"/api/v1/admin/accounts/{{user_id}}/{action}": {
            "post": {
                "summary": f"{action} an account (admin)",
                "operationId": f"account_{action.replace('-', '_')}",
                "parameters": [{"name": "user_id", "in": "path", "required": True, "schema": {"type": "string"}}],
                **({"requestBody": _body(body)} if body else {}),
                "responses": {"200": _ok(), **_problems(400, 401, 403, 404, 409, 422)},
            }
        }
        for action, body in (("disable", None), ("enable", None), ("unlock", None), ("reset-password", "PasswordReset"), ("roles", "Roles"))
    },
    "/api/v1/inspections/{id}/review": {
        "post": {
            "summary": "A person's decision on a judged inspection (manual review, 5.6)",
            "operationId": "reviewInspection",
            "parameters": [_ID],
            "requestBody": _body("Review"),
            "responses": {"200": _ok(), **_problems(400, 401, 403, 404, 409, 413, 415, 422)},
        },
    },
    "/api/v1/ledger": {
        "get": {
            "summary": "Ledger entries of a period (8.5) as CSV, JSON or XLSX",
            "operationId": "exportLedger",
            "parameters": [_DATE("from"), _DATE("to"), {"name": "format", "in": "query", "schema": {"enum": ["csv", "json", "xlsx"]}}],
            "responses": {
                "200": {
                    "description": "the export",
                    "content": {
                        "application/json": {"schema": {}},
                        "text/csv": {"schema": {"type": "string"}},
                        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": {"schema": {"type": "string"}},
                    },
                },
                **_problems(401, 403, 422),
            },
        },
    },
    "/api/v1/inspections/{id}/publicity": {
        "post": {
            "summary": "Fill the publicity record of an approved case (8.4.2); due in 7 working days",
            "operationId": "createPublicity",
            "parameters": [_ID],
            "requestBody": _body("Decision"),
            "responses": {"201": _ok("created"), **_problems(400, 401, 403, 404, 409, 422)},
        },
    },
    "/api/v1/publicity/{id}/publish": {
        "post": {"summary": "Publish a publicity record", "operationId": "publishPublicity", "parameters": [_ID], "responses": {"200": _ok(), **_problems(401, 403, 404, 409, 422)}},
    },
    "/api/v1/publicity/{id}/withdraw": {
        "post": {
            "summary": "Withdraw a publicity record (revocation, 8.4.4)",
            "operationId": "withdrawPublicity",
            "parameters": [_ID],
            "requestBody": _body("Withdrawal"),
            "responses": {"200": _ok(), **_problems(400, 401, 403, 404, 409, 422)},
        },
    },
    "/api/v1/publicity": {
        "get": {
            "summary": "The public feed of publicity records",
            "operationId": "publicityFeed",
            "security": [],
            "parameters": [{"name": "since", "in": "query", "schema": {"type": "string", "format": "date-time"}}],
            "responses": {"200": _ok(), **_problems(422)},
        },
    },
    "/api/v1/session/rating": {
        "post": {
            "summary": "The applicant rates the service (clause 10), with the link token",
            "operationId": "rateService",
            "security": [],
            "parameters": [{"name": "X-Takan-Token", "in": "header", "required": True, "schema": {"type": "string"}}],
            "requestBody": _body("Rating"),
            "responses": {"201": _ok("recorded"), **_problems(400, 401, 403, 404, 409, 422)},
        },
    },
    "/api/v1/session/node": {
        "post": {
            "summary": "Which node serves the session of a link (docs/nodes.md); this node takes the room if no live node hosts it",
            "operationId": "sessionNode",
            "security": [],
            "requestBody": {"required": True, "content": {"text/plain": {"schema": {"type": "string", "description": "the link token"}}}},
            "responses": {
                "200": {
                    "description": "the node to connect to, and the deployment's entry URL to ask again if it stops answering",
                    "content": {JSON: {"schema": {"type": "object", "required": ["node", "node_url", "entry_url"], "properties": {
                        "node": {"type": "string"}, "node_url": {"type": "string"}, "entry_url": {"type": "string"}}}}},
                },
                **_problems(400, 403, 503),
            },
        },
    },
    "/api/v1/evaluation/report": {
        "get": {"summary": "Service evaluation of a period (clause 10)", "operationId": "evaluationReport", "parameters": [_DATE("from"), _DATE("to")], "responses": {"200": _ok(), **_problems(401, 403, 422)}},
    },
    "/api/v1/warning-lists": {
        "get": {"summary": "Prudent-warning lists in force (8.1.8)", "operationId": "warningLists", "responses": {"200": _ok(), **_problems(401, 403)}},
    },
    "/api/v1/warning-lists/{kind}": {
        "post": {
            "summary": "Load a new version of a prudent-warning list from CSV",
            "operationId": "loadWarningList",
            "parameters": [{"name": "kind", "in": "path", "required": True, "schema": {"enum": ["dishonest", "abnormal_operation", "industry_catalogue", "negative_list"]}}],
            "requestBody": {"required": True, "content": {"text/csv": {"schema": {"type": "string"}}}},
            "responses": {"201": _ok("loaded"), **_problems(400, 401, 403, 413, 422)},
        },
    },
    "/api/v1/calendar": {
        "get": {
            "summary": "Working-day calendar: the years known and where each comes from (admin)",
            "operationId": "calendarYears",
            "responses": {
                "200": {
                    "description": "years (imported ones win over the chinese-calendar package), and a warning if next year is missing",
                    "content": {JSON: {"schema": {"type": "object", "required": ["years", "package", "warning"], "properties": {"years": {"type": "array"}, "package": {"type": "object"}, "warning": _NULLABLE_STR}}}},
                },
                **_problems(401, 403),
            },
        },
    },
    "/api/v1/calendar/{year}": {
        "get": {
            "summary": "One year's holidays and make-up working days in force, and its stored versions (admin)",
            "operationId": "calendarYear",
            "parameters": [_YEAR],
            "responses": {"200": _json("CalendarYear"), **_problems(401, 403, 404)},
        },
        "put": {
            "summary": "Import a year's State Council holiday arrangement (admin); replaces an earlier import, which is kept",
            "operationId": "importCalendarYear",
            "parameters": [_YEAR],
            "requestBody": {
                "required": True,
                "content": {JSON: {"schema": _ref("CalendarArrangement")}, "application/yaml": {"schema": {"type": "string"}}},
            },
            "responses": {
                "200": _json("CalendarImported", "imported; replaces the earlier version"),
                "201": _json("CalendarImported", "imported; the first version of the year"),
                **_problems(400, 401, 403, 404, 413, 415, 422),
            },
        },
    },
    "/api/v1/audit/access-log": {
        "get": {
            "summary": "The hash-chained log of evidence reads and exports (auditors)",
            "operationId": "accessLog",
            "parameters": [{"name": "day", "in": "query", "schema": {"type": "string", "format": "date"}}],
            "responses": {"200": _ok(), **_problems(401, 403, 422)},
        },
    },
    "/api/v1/protocol": {
        "get": {
            "summary": "The protocol's constants the pages use (limits, role and status names)",
            "operationId": "protocolConstants",
            "security": [],
            "responses": {"200": {"description": "see takan/protocol.py", "content": {JSON: {"schema": _ref("ProtocolConstants")}}}},
        },
    },
    "/api/v1/openapi.json": {
        "get": {"summary": "This document", "operationId": "openapi", "security": [], "responses": {"200": {"description": "OpenAPI 3.1", "content": {JSON: {"schema": {"type": "object"}}}}}},
    },
}


def document() -> dict[str, Any]:
    paths = {
        path: {
            method: {**op, "responses": {
                **op["responses"],
                **(_problems(429) if path.startswith("/api/v1/") and path != "/api/v1/openapi.json" else {}),
                # a JSON body passes the one body reader (web/bodies.py): its size and its type
                **(_problems(400, 413, 415) if JSON in op.get("requestBody", {}).get("content", {}) else {}),
            }}
            for method, op in ops.items()
        }
        for path, ops in PATHS.items()
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Takan approval-core API",
            "version": "1.0.0",
            "description": "Remote site inspections (DB3714/T 0014-2023 clause 8.2). Errors are RFC 9457 problem+json.",
        },
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}],
        "paths": paths,
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "description": "API key issued by an admin"}},
        },
    }


async def serve(request: web.Request) -> web.Response:
    return web.json_response(document())


def routes() -> list[Route]:
    return [get("/api/v1/openapi.json", serve, PUBLIC)]
