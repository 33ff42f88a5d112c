cd /work/wt/i18c
for t in 1 2; do timeout 200 .venv/bin/python /tmp/i18c/livebench.py $t 15; done
