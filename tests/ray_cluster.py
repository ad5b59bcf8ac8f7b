"""A real multi-node Ray cluster on 127.0.0.1 for the tests, in a process of its own.

Run as ``python -m tests.ray_cluster NODES`` with ``RAY_TMPDIR`` set to a private folder (so the
address file ``ray.init()`` would find stays out of other tests' way): it starts a head of one CPU
and NODES more nodes of one CPU each (``ray.cluster_utils.Cluster``), prints the cluster's address,
then reads commands on stdin: ``kill`` removes a worker node at once (as a machine lost); end of
input shuts the cluster down.
"""
import sys

from ray.cluster_utils import Cluster


def main() -> None:
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "node_ip_address": "127.0.0.1",
                                                            "include_dashboard": False})
    try:
        nodes = [cluster.add_node(num_cpus=1, node_ip_address="127.0.0.1") for _ in range(int(sys.argv[1]))]
        cluster.wait_for_nodes()
        print(cluster.address, flush=True)
        for line in sys.stdin:
            if line.strip() == "kill" and nodes:
                cluster.remove_node(nodes.pop(), allow_graceful=False)
                print("killed", flush=True)
    finally:
        cluster.shutdown()


if __name__ == "__main__":
    main()
