"""Regenerates the pinned OCSF 1.4.0 JSON Schemas in this folder.

Not run by the tests (they read the committed output). Run it in a virtual environment:

    python3 -m venv /tmp/ocsf && /tmp/ocsf/bin/pip install ocsf-json-schema==1.2.0
    /tmp/ocsf/bin/python schema/official/ocsf-1.4.0/generate.py

ocsf-json-schema 1.2.0 bundles the OCSF server's export of schema 1.4.0
(https://schema.ocsf.io/1.4.0/export/schema) and turns a class into a JSON Schema (draft 2020-12)
with every object embedded under $defs: required attributes, enums, types, regex/range of the
scalar types, the at_least_one / just_one constraints. Profiles change which attributes exist, so
there is one file per profile set the `ocsf` format uses. `enums.json` keeps the captions of every
enum the two classes reach (the JSON Schema has the ids only), so that a sibling caption
(`activity_name`, `severity`, `status`, ...) can be checked against its id.
"""

import json
import pathlib

import ocsf_json_schema
from ocsf_json_schema import OcsfJsonSchemaEmbedded

VERSION = "1.4.0"
HERE = pathlib.Path(__file__).parent
EXPORT = pathlib.Path(ocsf_json_schema.__file__).parent / "ocsf" / f"{VERSION}.json"

CLASSES = {
    "network_activity": [[], ["host"], ["security_control"], ["host", "security_control"]],
    "detection_finding": [[], ["host"]],
}


def main():
    export = json.loads(EXPORT.read_text())
    assert export["version"] == VERSION, export["version"]
    schemas = OcsfJsonSchemaEmbedded(export)
    for cls, profile_sets in CLASSES.items():
        for profiles in profile_sets:
            schema = schemas.get_class_schema(cls, profiles)
            name = cls + ("." + "+".join(profiles) if profiles else "") + ".json"
            (HERE / name).write_text(json.dumps(schema, sort_keys=True, separators=(",", ":")) + "\n")

    # Enum captions: "<class or object>.<attribute>" -> its sibling attribute and {id: caption}, for the classes above and
    # every object they reach.
    enums = {}
    seen = set()

    def walk(kind, name, attributes):
        if (kind, name) in seen:
            return
        seen.add((kind, name))
        for attr, data in sorted(attributes.items()):
            if data.get("enum"):
                enums[f"{name}.{attr}"] = {
                    "sibling": data.get("sibling"),
                    "values": {k: v["caption"] for k, v in sorted(data["enum"].items())},
                }
            obj = data.get("object_type")
            if obj and obj in export["objects"]:
                walk("object", obj, export["objects"][obj]["attributes"])

    for cls in CLASSES:
        walk("class", cls, export["classes"][cls]["attributes"])
    classes = {
        cls: {"uid": export["classes"][cls]["uid"], "category_uid": export["classes"][cls]["category_uid"],
              "caption": export["classes"][cls]["caption"]}
        for cls in CLASSES
    }
    out = {"version": VERSION, "classes": classes, "enums": enums}
    (HERE / "enums.json").write_text(json.dumps(out, sort_keys=True, indent=0) + "\n")


if __name__ == "__main__":
    main()
