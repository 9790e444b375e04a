"""The HTTP gateway: the tree's only TCP listener, for containers and scripts."""
