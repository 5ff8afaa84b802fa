"""Serves AppWorld's environment server on loopback, for rung's server pools.

`appworld serve environment` binds 0.0.0.0 and takes its data folder from the current directory.
This runs the same FastAPI app (`appworld.serve.environment.app`) with uvicorn on 127.0.0.1,
with the data folder and the default experiment name given explicitly, and checks the data
folder before serving so that a wrong folder is a clear error instead of HTTP 500s later:

    python serve.py --port 8000 --root DIR [--experiment NAME]

It also makes the server's internal errors say what went wrong: the released server answers a
bare "Internal Server Error" (HTTP 500) for, e.g., an unknown task id; here the body is
`{"detail": "<the exception>"}`, still with status 500, so clients written for the released
server work unchanged.
"""

from __future__ import annotations

import argparse
import os
import sys

REQUIRED = [
    ("data", "the data folder"),
    ("data/base_dbs", "the apps' base databases"),
    ("data/api_docs/standard", "the API docs"),
    ("data/tasks", "the task folders"),
]


def check_root(root: str) -> str | None:
    """Why `root` is not an AppWorld data root, or None when it looks like one."""
    if not os.path.isdir(root):
        return f"the data root {root} does not exist"
    for relative, what in REQUIRED:
        path = os.path.join(root, relative)
        if not os.path.isdir(path):
            return (
                f"{root} is not an AppWorld data root: {what} ({path}) is missing; build one "
                "with `cargo xtask appworld synth --root DIR` or point --root at the folder "
                "that contains data/"
            )
    dbs = os.path.join(root, "data", "base_dbs")
    if not any(name.endswith(".db") for name in os.listdir(dbs)):
        return f"{dbs} holds no database (*.db): the data folder is incomplete"
    return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--root", required=True, help="the folder that contains data/")
    parser.add_argument(
        "--experiment",
        default=None,
        help="experiment name of episodes whose /initialize names none (outputs go to "
        "<root>/experiments/outputs/<name>)",
    )
    args = parser.parse_args()
    root = os.path.abspath(args.root)
    problem = check_root(root)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    # AppWorld reads APPWORLD_ROOT when it is imported.
    os.environ["APPWORLD_ROOT"] = root
    try:
        import uvicorn
        from fastapi import Request
        from fastapi.responses import JSONResponse

        import appworld
        from appworld.serve import environment
    except ImportError as error:
        print(
            f"error: cannot import AppWorld's server ({error}); this Python ({sys.executable}) "
            "is not the virtualenv of `cargo xtask appworld setup`, or that setup did not finish",
            file=sys.stderr,
        )
        return 2
    appworld.update_root(root)
    if args.experiment:
        # The request model's default (pydantic 1), used when /initialize names no experiment.
        environment.AppWorldArgs.__fields__["experiment_name"].default = args.experiment

    @environment.app.exception_handler(Exception)
    async def explain(_request: Request, error: Exception) -> JSONResponse:
        return JSONResponse(status_code=500, content={"detail": f"{type(error).__name__}: {error}"})

    print(f"AppWorld {appworld.__version__} environment server, data root {root}", flush=True)
    uvicorn.run(environment.app, host="127.0.0.1", port=args.port, log_level="warning")
    return 0


if __name__ == "__main__":
    sys.exit(main())
