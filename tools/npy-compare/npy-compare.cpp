//===- npy-compare.cpp - compare .npy results with fixtures -----*- C++ -*-===//
//
//   npy-compare ACTUAL EXPECTED [--rtol R] [--atol A]
//
// ACTUAL and EXPECTED are .npy files, or directories: a directory of actual
// results (from `mlxc run --save`) holding one .npy is compared with
// EXPECTED/expected.npy. Passes when |a − e| ≤ atol + rtol·|e| everywhere
// (NaN matches NaN, ±inf must match exactly) and the shapes agree. The test
// suite's numeric oracle; never used by the compiler.
//
//===----------------------------------------------------------------------===//
#include "runtime/Tensor.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <dirent.h>
#include <string>
#include <sys/stat.h>
#include <vector>

using mlx::rt::Tensor;

static bool isDirectory(const std::string &path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

static std::vector<std::string> npyFiles(const std::string &dir) {
  std::vector<std::string> files;
  if (DIR *d = opendir(dir.c_str())) {
    while (dirent *entry = readdir(d)) {
      std::string name = entry->d_name;
      if (name.size() > 4 && name.compare(name.size() - 4, 4, ".npy") == 0)
        files.push_back(dir + "/" + name);
    }
    closedir(d);
  }
  return files;
}

int main(int argc, char **argv) {
  if (argc < 3) {
    std::fprintf(stderr,
                 "usage: npy-compare ACTUAL EXPECTED [--rtol R] [--atol A]\n");
    return 2;
  }
  std::string actualPath = argv[1], expectedPath = argv[2];
  double rtol = 1e-5, atol = 1e-6;
  for (int i = 3; i + 1 < argc; i += 2) {
    std::string flag = argv[i];
    if (flag == "--rtol")
      rtol = std::atof(argv[i + 1]);
    else if (flag == "--atol")
      atol = std::atof(argv[i + 1]);
  }
  if (isDirectory(actualPath)) {
    std::vector<std::string> files = npyFiles(actualPath);
    if (files.size() != 1) {
      std::fprintf(stderr, "npy-compare: expected one .npy in %s, found %zu\n",
                   actualPath.c_str(), files.size());
      return 1;
    }
    actualPath = files[0];
  }
  if (isDirectory(expectedPath))
    expectedPath += "/expected.npy";
  Tensor actual, expected;
  std::string error;
  if (!mlx::rt::readNpy(actualPath, actual, error) ||
      !mlx::rt::readNpy(expectedPath, expected, error)) {
    std::fprintf(stderr, "npy-compare: %s\n", error.c_str());
    return 1;
  }
  if (actual.shape() != expected.shape()) {
    std::fprintf(stderr, "npy-compare: shape %s, expected %s\n",
                 mlx::rt::formatShape(actual.shape()).c_str(),
                 mlx::rt::formatShape(expected.shape()).c_str());
    return 1;
  }
  int64_t bad = 0;
  double worst = 0;
  for (int64_t i = 0; i < actual.numElements(); ++i) {
    double a = actual.getDouble(i), e = expected.getDouble(i);
    bool ok = (std::isnan(a) && std::isnan(e)) ||
              (std::isinf(e) ? a == e
                             : std::fabs(a - e) <= atol + rtol * std::fabs(e));
    if (!ok) {
      if (bad < 5)
        std::fprintf(stderr, "npy-compare: element %lld: %.9g, expected %.9g\n",
                     (long long)i, a, e);
      ++bad;
    }
    if (std::isfinite(a) && std::isfinite(e))
      worst = std::fmax(worst, std::fabs(a - e) / (atol + rtol * std::fabs(e)));
  }
  if (bad) {
    std::fprintf(stderr, "npy-compare: %lld of %lld elements differ\n",
                 (long long)bad, (long long)actual.numElements());
    return 1;
  }
  std::printf(
      "npy-compare: %lld elements match (worst %.3g of the tolerance)\n",
      (long long)actual.numElements(), worst);
  return 0;
}
