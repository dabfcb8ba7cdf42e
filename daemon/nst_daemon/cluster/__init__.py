"""`nst-daemon --cluster`: the same socket and protocol, the jobs run by a Ray cluster's workers.

front: the front door's engine (Ray actors per GPU / CPU worker slot, their threads, status);
worker: what each actor is (a warm model, its style cache, a job's progress streamed back);
loopback: a Ray cluster on one machine's loopback, to try it out and for the tests.
Importing this package imports nothing of Ray; front does.
"""
