"""FHIR clients nobody here wrote, against a live ketcare demo server.

- fhirclient (SMART on FHIR's Python client, R4 models) reads /metadata and follows the
  searchset's next links page by page.
- fhirpy searches with paging (fetch_all follows next links), by identifier and date, with
  `_include` and `_revinclude`, and creates: a Patient, a session's blood-pressure panel and a
  QuestionnaireResponse (then updates the Patient).
- fhir.resources validates every resource ketcare returned (CapabilityStatement, every Bundle,
  every resource type, each read by id too, OperationOutcome) with its R4B models.
- PyJWT (with cryptography) is a SMART backend client: registered by an administrator through
  the API with an ES384 and an RS384 key made here, it finds the token endpoint in
  .well-known/smart-configuration, signs its assertions, and reads Patient with the token.

Usage: clients.py BASE_URL TOKEN ADMIN_TOKEN MRN_SYSTEM   (BASE_URL ends in /fhir/r4; TOKEN is a
nurse's API token, ADMIN_TOKEN an administrator's; MRN_SYSTEM the identifier system the server
was started with).
Exits non-zero on any failure, printing what failed.
"""

import datetime
import json
import sys
import urllib.error
import urllib.parse
import urllib.request

from fhir.resources.R4B import get_fhir_model_class
from fhirclient import client as fhirclient_client
from fhirclient.models.fhirsearch import FHIRSearch
from fhirclient.models.patient import Patient as FhirclientPatient
from fhirpy import SyncFHIRClient

base, token, admin_token, mrn_system = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
api = base.rsplit("/fhir/r4", 1)[0] + "/api/v1"
auth = {"Authorization": f"Bearer {token}"}
seen = {}  # resourceType -> count validated
failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print(f"FAIL {what}", file=sys.stderr)


def validate(obj):
    """Validates one resource (and, for a Bundle, each entry's resource) with fhir.resources."""
    kind = obj.get("resourceType")
    try:
        get_fhir_model_class(kind).model_validate(obj)
    except Exception as e:  # noqa: BLE001 - the validator's message is the failure
        failures.append(f"{kind} {obj.get('id')}: {e}")
        print(f"FAIL {kind} {obj.get('id')} does not validate: {e}", file=sys.stderr)
        return
    seen[kind] = seen.get(kind, 0) + 1
    if kind == "Bundle":
        for entry in obj.get("entry", []):
            validate(entry["resource"])


def get(path, expect=200):
    url = path if path.startswith("http") else base + path
    req = urllib.request.Request(url, headers=auth)
    try:
        with urllib.request.urlopen(req) as r:
            status, body, ctype = r.status, r.read(), r.headers.get("Content-Type")
    except urllib.error.HTTPError as e:
        status, body, ctype = e.code, e.read(), e.headers.get("Content-Type")
    check(status == expect, f"GET {path}: {status}, expected {expect}")
    if base in url:
        check(ctype == "application/fhir+json", f"GET {path}: content type {ctype}")
    obj = json.loads(body)
    validate(obj)
    return obj


def post_api(path, body):
    req = urllib.request.Request(
        api + path,
        data=json.dumps(body).encode(),
        headers={**auth, "Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(req) as r:
        return json.loads(r.read())


# Readings for a patient in a chair of the demo clinic, so there are Observations to read.
with urllib.request.urlopen(urllib.request.Request(api + "/sessions", headers=auth)) as r:
    active = json.loads(r.read())
check(len(active) > 0, "the demo clinic has a patient in a chair")
patient_id = active[0]["patient_id"]
for vitals in (
    {"systolic": 126, "diastolic": 80, "heart_rate": 72, "spo2": 98},
    {"heart_rate": 76, "resp_rate": 14, "temperature_c": 36.8},
):
    post_api(f"/sessions/{active[0]['id']}/vitals", vitals)

# A course booked for the patient in the chair (from tomorrow, in the demo's third chair), so
# there are Appointments and a course Group to read.
with urllib.request.urlopen(urllib.request.Request(api + "/me", headers=auth)) as r:
    me = json.loads(r.read())
nurses = get("/Practitioner?role=nurse")["entry"]
my_id = next(int(e["resource"]["id"]) for e in nurses
             if e["resource"]["identifier"][0]["value"] == me["username"])
tomorrow = (datetime.date.today() + datetime.timedelta(days=1)).isoformat()
booked = post_api("/schedule/courses", {"patient_id": patient_id, "template_id": "esketamine-trd",
                                        "first_day": tomorrow, "time": "15:00", "chair_id": 3,
                                        "nurse_id": my_id})
check(len(booked.get("bookings", [])) > 0, f"a course is booked: {booked}")

# fhir.resources over everything the server answers.
PATIENT_TYPES = ("RelatedPerson", "Encounter", "Condition", "AllergyIntolerance", "MedicationStatement",
                 "MedicationRequest", "MedicationAdministration", "QuestionnaireResponse", "Consent",
                 "Appointment", "Flag", "Observation")
get("/metadata")
for path in ("/Questionnaire", "/Practitioner", "/PractitionerRole", "/Group"):
    found = get(path)
    check(found["total"] >= 1, f"{path}: {found['total']}")
    for entry in found["entry"]:
        r = entry["resource"]
        check(get(f"/{r['resourceType']}/{r['id']}") == r, f"{path}: read by id as searched")
everyone = get("/Patient?_count=200")
totals = {}  # resourceType -> how many the per-patient searches found
check(everyone["total"] >= 20, f"the demo's patients: {everyone['total']}")
for entry in everyone["entry"]:
    pid = entry["resource"]["id"]
    get(f"/Patient/{pid}")
    for kind in PATIENT_TYPES:
        totals[kind] = totals.get(kind, 0) + get(f"/{kind}?patient={pid}")["total"]
obs = get(f"/Observation?patient={patient_id}&category=vital-signs")
check(obs["total"] >= 6, f"observations of the patient in the chair: {obs['total']}")
get(f"/Observation?patient={patient_id}&code=http://loinc.org|85354-9")
# Every type of the patient in the chair read by id, exactly as its search shows it.
for kind in PATIENT_TYPES:
    for entry in get(f"/{kind}?patient={patient_id}").get("entry", []):
        r = entry["resource"]
        check(get(f"/{kind}/{r['id']}") == r, f"{kind}/{r['id']}: read by id as searched")
for kind in ("MedicationRequest", "MedicationAdministration", "Consent"):
    check(get(f"/{kind}?patient={patient_id}")["total"] >= 1, f"the patient in the chair has a {kind}")
for kind in PATIENT_TYPES:
    if kind not in ("AllergyIntolerance", "Flag"):
        check(totals.get(kind, 0) >= 1, f"the demo clinic holds a {kind}: {totals}")
get("/Patient?birthdate=yesterday", expect=400)
get("/Patient/999999999", expect=404)

# fhirclient: the capability statement, then a search followed through its next links.
smart = fhirclient_client.FHIRClient(settings={"app_id": "ketcare-test", "api_base": base})
smart.server.session.headers.update(auth)
smart.prepare()
capability = smart.server.capabilityStatement
check(capability is not None and capability.fhirVersion == "4.0.1", "fhirclient reads /metadata")
kinds = {r.type for r in capability.rest[0].resource}
check({"Patient", "Observation", "RelatedPerson"} <= kinds, f"capability lists {kinds}")
pages = list(FHIRSearch(FhirclientPatient, {"_count": "5"}).perform_iter(smart.server))
check(len(pages) >= 4, f"fhirclient followed next links: {len(pages)} pages")
ids = [e.resource.id for p in pages for e in (p.entry or [])]
check(len(ids) == everyone["total"] and len(set(ids)) == len(ids),
      f"fhirclient's pages hold each patient once: {len(ids)} of {everyone['total']}")

# fhirpy: paging with fetch_all, and searches by identifier and date.
fp = SyncFHIRClient(base, authorization=f"Bearer {token}")
all_patients = fp.resources("Patient").limit(7).fetch_all()
check(len(all_patients) == everyone["total"], f"fhirpy fetch_all: {len(all_patients)}")
one = all_patients[0]
check(one["identifier"][0]["system"] == mrn_system, f"the site's MRN system: {one['identifier'][0]}")
by_mrn = fp.resources("Patient").search(identifier=one["identifier"][0]["value"]).fetch()
check([p["id"] for p in by_mrn] == [one["id"]], "fhirpy finds a patient by MRN")
with_system = fp.resources("Patient").search(identifier=f"{mrn_system}|{one['identifier'][0]['value']}").fetch()
check([p["id"] for p in with_system] == [one["id"]], "fhirpy finds a patient by system|MRN")
born = one["birthDate"]
same_day = fp.resources("Patient").search(birthdate=born).fetch_all()
check(one["id"] in [p["id"] for p in same_day], "fhirpy searches by birth date")
vit = fp.resources("Observation").search(patient=patient_id, category="vital-signs", date=f"ge{born}").fetch_all()
check(len(vit) == obs["total"], f"fhirpy reads the vital signs: {len(vit)}")

# fhirpy: _include and _revinclude.
given = fp.resources("MedicationAdministration").search(patient=patient_id) \
    .include("MedicationAdministration", "request").fetch_raw()
validate(json.loads(json.dumps(given)))
modes = [e["search"]["mode"] for e in given["entry"]]
check("include" in modes, f"fhirpy _include brings the order: {modes}")
rev = fp.resources("Patient").search(_id=patient_id).revinclude("Encounter", "patient").fetch_raw()
rev_kinds = {e["resource"]["resourceType"] for e in rev["entry"]}
check(rev_kinds == {"Patient", "Encounter"}, f"fhirpy _revinclude: {rev_kinds}")

# fhirpy creates: a patient (then updates them), a blood-pressure panel in the chair's session,
# a PHQ-9 response.
new = fp.resource("Patient", identifier=[{"system": mrn_system, "value": "FHIR-PY-1"}],
                  name=[{"use": "official", "family": "Client", "given": ["Py"]}],
                  birthDate="1990-02-03", gender="other")
new.save()
check(bool(new.get("id")), "fhirpy created a Patient")
new["telecom"] = [{"system": "phone", "value": "555-0142"}]
new.save()
check(get(f"/Patient/{new['id']}")["telecom"][0]["value"] == "555-0142", "fhirpy updated the Patient")
bp = fp.resource("Observation", status="final",
                 category=[{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                                        "code": "vital-signs"}]}],
                 code={"coding": [{"system": "http://loinc.org", "code": "85354-9"}]},
                 subject={"reference": f"Patient/{patient_id}"},
                 encounter={"reference": f"Encounter/{active[0]['id']}"},
                 component=[{"code": {"coding": [{"system": "http://loinc.org", "code": c}]},
                             "valueQuantity": {"value": v, "unit": "mm[Hg]",
                                               "system": "http://unitsofmeasure.org", "code": "mm[Hg]"}}
                            for c, v in (("8480-6", 124), ("8462-4", 79))])
bp.save()
check(bp.get("id", "").endswith("-bp"), f"fhirpy created an Observation: {bp.get('id')}")
answers = fp.resource("QuestionnaireResponse", status="completed",
                      questionnaire="urn:ketcare:questionnaire:phq9",
                      subject={"reference": f"Patient/{patient_id}"},
                      item=[{"linkId": str(n), "answer": [{"valueInteger": 0}]} for n in range(1, 10)])
answers.save()
check(bool(answers.get("id")), "fhirpy created a QuestionnaireResponse")
validate(get(f"/QuestionnaireResponse/{answers['id']}"))

# Bulk Data export of the whole demo clinic: kick-off, polling, the manifest; pandas reads every
# NDJSON file and fhir.resources validates every line.
import io
import time

import pandas

req = urllib.request.Request(base + "/$export", headers={**auth, "Prefer": "respond-async",
                                                          "Accept": "application/fhir+json"})
with urllib.request.urlopen(req) as r:
    check(r.status == 202, f"export kick-off: {r.status}")
    status_url = r.headers["Content-Location"]
manifest = None
for _ in range(600):
    with urllib.request.urlopen(urllib.request.Request(status_url, headers=auth)) as r:
        if r.status == 200:
            manifest = json.loads(r.read())
            break
        check(r.headers.get("X-Progress") is not None, "export status carries X-Progress")
    time.sleep(0.2)
check(manifest is not None, "the export finished")
exported = {}
for out in (manifest or {}).get("output", []):
    with urllib.request.urlopen(urllib.request.Request(out["url"], headers=auth)) as r:
        text = r.read().decode()
    frame = pandas.read_json(io.StringIO(text), lines=True)
    check(len(frame) == out["count"], f"{out['type']}: pandas read {len(frame)} of {out['count']}")
    check(set(frame["resourceType"]) == {out["type"]}, f"{out['type']}: one type per file")
    for line in text.splitlines():
        validate(json.loads(line))
    exported[out["type"]] = len(frame)
check(exported.get("Patient") == get("/Patient?_count=1")["total"],
      f"the export holds every patient (the demo's and the one fhirpy created): {exported}")
print("bulk export read by pandas: " + ", ".join(f"{k} {v}" for k, v in exported.items()))

# A SMART backend client (PyJWT): registered by the administrator, acting as the demo's
# pharmacist, it signs assertions with keys made here and reads Patient with its access token.
import uuid

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa

keys = {"ES384": ec.generate_private_key(ec.SECP384R1()),
        "RS384": rsa.generate_private_key(public_exponent=65537, key_size=2048)}
public = []
for alg, key in keys.items():
    algorithm = jwt.algorithms.ECAlgorithm if alg == "ES384" else jwt.algorithms.RSAAlgorithm
    jwk = algorithm.to_jwk(key.public_key(), as_dict=True)
    public.append({**jwk, "kid": f"py-{alg.lower()}", "alg": alg})
req = urllib.request.Request(
    api + "/fhir-clients",
    data=json.dumps({"name": "python backend", "user": "pharmacist", "jwks": {"keys": public},
                     "scope": "system/*.read"}).encode(),
    headers={"Authorization": f"Bearer {admin_token}", "Content-Type": "application/json"},
    method="POST",
)
with urllib.request.urlopen(req) as r:
    client_id = json.loads(r.read())["client_id"]
with urllib.request.urlopen(base + "/.well-known/smart-configuration") as r:
    discovery = json.loads(r.read())
token_url = discovery["token_endpoint"]
check(discovery["grant_types_supported"] == ["client_credentials"], "SMART discovery")
for alg, key in keys.items():
    now = int(time.time())
    assertion = jwt.encode(
        {"iss": client_id, "sub": client_id, "aud": token_url, "exp": now + 240,
         "jti": str(uuid.uuid4())},
        key, algorithm=alg, headers={"kid": f"py-{alg.lower()}"})
    form = urllib.parse.urlencode({
        "grant_type": "client_credentials",
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        "client_assertion": assertion,
        "scope": "system/Patient.read",
    }).encode()
    with urllib.request.urlopen(urllib.request.Request(token_url, data=form, method="POST")) as r:
        granted = json.loads(r.read())
    check(granted["token_type"] == "bearer" and granted["expires_in"] == 300
          and granted["scope"] == "system/Patient.read", f"{alg} token: {granted}")
    smart_auth = {"Authorization": f"Bearer {granted['access_token']}"}
    with urllib.request.urlopen(urllib.request.Request(base + "/Patient?_count=5",
                                                       headers=smart_auth)) as r:
        patients = json.loads(r.read())
    validate(patients)
    check(patients["total"] == get("/Patient?_count=1")["total"], f"{alg} token reads Patient: {patients['total']}")
    try:
        urllib.request.urlopen(urllib.request.Request(api + "/me", headers=smart_auth))
        check(False, f"{alg} token refused on the JSON API")
    except urllib.error.HTTPError as e:
        check(e.code == 401, f"{alg} token on the JSON API: {e.code}, expected 401")
print(f"SMART backend client {client_id}: ES384 and RS384 tokens read Patient")

print("validated with fhir.resources (R4B): " + ", ".join(f"{k} {v}" for k, v in sorted(seen.items())))
print(f"fhirclient: {len(pages)} pages; fhirpy: {len(all_patients)} patients, {len(vit)} observations")
if failures:
    print(f"{len(failures)} failure(s)", file=sys.stderr)
    sys.exit(1)
