"""Validates every fixture file under the given directories against fixtures/schema.json.

An independent check of the schema the emulator prints: a fixture the Rust
loader accepts must also satisfy the published JSON Schema, so editors that
use it give the same verdict as `aymara-mock check`.
"""
import json
import pathlib
import sys

import jsonschema


def main() -> int:
    failures = 0
    count = 0
    for root in sys.argv[1:]:
        root = pathlib.Path(root)
        schema = json.loads((root / "schema.json").read_text())
        jsonschema.Draft202012Validator.check_schema(schema)
        validator = jsonschema.Draft202012Validator(schema)
        for path in sorted(root.rglob("*.json")):
            if path.name == "schema.json":
                continue
            count += 1
            errors = list(validator.iter_errors(json.loads(path.read_text())))
            for err in errors:
                location = "/".join(str(p) for p in err.absolute_path)
                print(f"{path}: {location}: {err.message}")
            failures += bool(errors)
    print(f"{count} fixtures checked against the schema, {failures} invalid")
    return 1 if failures or count == 0 else 0


if __name__ == "__main__":
    sys.exit(main())
