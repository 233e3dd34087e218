"""Start os-ken apps: ``python -m controllers.launch --port 6653 controllers.l2switch``.

os-ken 4.x ships no manager command (PLATFORM.md); this is the few lines it would run.
Logs go to ``--log-file`` (the run folder), with wall-clock timestamps.
"""

import argparse
import logging
import os
import sys


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m controllers.launch")
    parser.add_argument("apps", nargs="+", help="os-ken app modules, e.g. controllers.l2switch")
    parser.add_argument("--port", type=int, default=6653, help="OpenFlow TCP port")
    parser.add_argument("--listen", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--log-file", help="log file (default: stderr)")
    parser.add_argument("--config", help="JSON config for the apps (REDLAB_CONTROLLER_CONFIG)")
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args(argv)

    from os_ken.lib import hub
    hub.patch(thread=False)

    logging.basicConfig(
        filename=args.log_file, level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s.%(msecs)03d %(levelname)s %(name)s: %(message)s",
        datefmt="%Y-%m-%d %H:%M:%S")
    if args.config:
        os.environ["REDLAB_CONTROLLER_CONFIG"] = os.path.abspath(args.config)

    from os_ken import cfg
    from os_ken.base.app_manager import AppManager
    cfg.CONF(args=["--ofp-tcp-listen-port", str(args.port),
                   "--ofp-listen-host", args.listen], project="os_ken")
    logging.getLogger(__name__).info("starting %s on %s:%d", ", ".join(args.apps),
                                     args.listen, args.port)
    AppManager.run_apps(args.apps)
    return 0


if __name__ == "__main__":
    sys.exit(main())
