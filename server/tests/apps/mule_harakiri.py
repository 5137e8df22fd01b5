"""A mule script that arms its user harakiri and then hangs: the master must kill it
(and respawn it, which runs this again). Each run appends its pid to mule_pids."""

import os
import time

import uwsgi

with open(os.path.join(os.environ.get("TEST_STATE_DIR", "/tmp"), "mule_pids"), "a") as f:
    f.write("%d\n" % os.getpid())
uwsgi.set_user_harakiri(1)
time.sleep(60)
