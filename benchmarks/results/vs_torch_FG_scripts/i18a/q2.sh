cd /work/wt/i18a; uptime
.venv/bin/python /tmp/i18a/ab.py 1 7 8 vgg11_bn:width=0.5 fuse_bn_relu_pool
.venv/bin/python /tmp/i18a/ab.py 2 7 10 vgg11_bn:width=0.5 fuse_bn_relu_pool
uptime
