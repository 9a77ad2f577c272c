"""Refresh the nbval references: copy the smoke-scale notebooks executed by `make reproduce`
from build/smoke/ into tests/notebooks/, dropping image outputs (nbval never compares them) and timings,
and each chapter's key numbers (build/smoke/numbers/<chapter>.json -> tests/notebooks/<chapter>.numbers.json).

    make references     # = make reproduce SCALE=smoke && python tests/make_references.py
"""
import shutil
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]


def strip_images(notebook):
    """Drop image outputs and the per-run papermill/execution timings, so a refresh diffs cleanly."""
    notebook.metadata.pop("papermill", None)
    for cell in notebook.cells:
        cell.metadata.pop("papermill", None)
        cell.metadata.pop("execution", None)
        if cell.cell_type == "code":
            cell.outputs = [o for o in cell.outputs if o.output_type == "stream" or "text/plain" in o.get("data", {})
                            and not any(k.startswith("image/") for k in o.get("data", {}))]
    return notebook


def main() -> None:
    dest = ROOT / "tests" / "notebooks"
    dest.mkdir(exist_ok=True)
    sources = sorted((ROOT / "build" / "smoke").glob("[0-9][0-9]_*.ipynb"))
    if not sources:
        raise SystemExit("no executed notebooks in build/smoke/: run `make reproduce SCALE=smoke` first")
    for source in sources:
        nbformat.write(strip_images(nbformat.read(source, as_version=4)), dest / source.name)
        print(f"{source.name} -> {dest / source.name}")
        numbers = source.parent / "numbers" / f"{source.stem}.json"
        if numbers.exists():
            shutil.copyfile(numbers, dest / f"{source.stem}.numbers.json")
            print(f"numbers/{numbers.name} -> {dest / f'{source.stem}.numbers.json'}")


if __name__ == "__main__":
    main()
