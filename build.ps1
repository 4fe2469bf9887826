#!/usr/bin/env pwsh
<#
.SYNOPSIS
  Build script of the Tilt engine: restore, build, test, bench.
.DESCRIPTION
  Run through the local PowerShell tool so that a fresh machine needs only the .NET SDK:
    dotnet tool restore
    dotnet pwsh ./build.ps1 test
  Tasks (several may be given, in order):
    restore  restore NuGet packages and local tools
    build    build the solution (Release)
    test     build, then run every test project, the C API, Node SDK and cluster tests and print "N passed, N failed"
    cluster-test  build src/Cli, then run two `tilt serve` replicas behind HAProxy on loopback (tests/cluster;
             needs haproxy and python3) and print "N passed, N failed"; numbers in artifacts/cluster-test-results
    pack     pack the public libraries (Tilt.Kernels, Tilt.Engine, Tilt.Hosting; .nupkg and .snupkg) into artifacts/packages
    example  pack, then build and run examples/TiltService against those packages (one best-of-n request)
    bench    run the benchmarks (pass BenchmarkDotNet arguments after --, e.g. -- --filter '*Sample*')
    perf     regenerate the synthetic 15M and 110M models (cached) and the end-to-end performance tables
             in docs/results/ (engine vs raw llama.cpp batch decode vs naive best-of-n, at 1 thread and at
             every physical core); takes ~30 minutes
    llama    build llama.cpp from your source tree (-LlamaSource DIR or $env:TILT_LLAMA_SRC), which must be a git
             checkout of commit 815a2a5 (the one LLamaSharp 0.30.0 binds): CPU-native flags, or CUDA with -Cuda
             (needs nvcc). The libraries land in artifacts/llama/cpu (or cuda); point --native-lib or
             TILT_NATIVE_LIB at the libllama there. ~25 minutes on 2 cores; never part of CI.
    all      restore, build, test
#>
param(
    [Parameter(Position = 0, ValueFromRemainingArguments = $true)]
    [string[]] $Tasks = @('all'),
    # llama: the llama.cpp source tree to build.
    [string] $LlamaSource = $env:TILT_LLAMA_SRC,
    # llama: build the CUDA backend (needs nvcc) instead of the CPU-only one.
    [switch] $Cuda
)

$ErrorActionPreference = 'Stop'
Set-StrictMode -Version Latest
$root = $PSScriptRoot
$solution = Join-Path $root 'Engine.sln'
$configuration = if ($env:CONFIGURATION) { $env:CONFIGURATION } else { 'Release' }

# Everything after '--' goes to the benchmark runner.
$benchArgs = @()
$split = [Array]::IndexOf($Tasks, '--')
if ($split -ge 0) {
    $benchArgs = if ($split -lt $Tasks.Length - 1) { $Tasks[($split + 1)..($Tasks.Length - 1)] } else { @() }
    $Tasks = if ($split -gt 0) { $Tasks[0..($split - 1)] } else { @('bench') }
}

function Invoke-Step([string] $name, [scriptblock] $body) {
    Write-Host "==> $name" -ForegroundColor Cyan
    & $body
    if ($LASTEXITCODE -ne 0) { throw "$name failed with exit code $LASTEXITCODE" }
}

function Invoke-Restore {
    Invoke-Step 'restore tools' { dotnet tool restore }
    Invoke-Step 'restore packages' { dotnet restore $solution }
}

function Invoke-Build {
    Invoke-Step "build ($configuration)" { dotnet build $solution -c $configuration --no-restore -nologo }
}

# The C API (native/): build libtilt, its C sample and tests against the Interop build of the solution, then run
# ctest (C API tests, the C sample under valgrind, the Python example and tests). Release, as users build it (gcc
# warns about more in optimized builds, and warnings are errors). $true when everything passed.
function Invoke-NativeTest([string] $results) {
    if ($env:TILT_SKIP_NATIVE -eq '1') { Write-Warning 'TILT_SKIP_NATIVE=1: the C API tests were not run'; return $true }
    if (-not (Get-Command cmake -ErrorAction SilentlyContinue)) { throw 'cmake not found: the C API tests (native/) need cmake, ctest and a C compiler' }
    $build = Join-Path $root 'native/build'
    $managed = Join-Path $root "src/Interop/bin/$configuration/net10.0"
    # Everything goes to the host: this function's output is its result.
    Invoke-Step 'configure native' { cmake -S (Join-Path $root 'native') -B $build -DCMAKE_BUILD_TYPE=Release "-DTILT_MANAGED_DIR=$managed" } | Out-Host
    Invoke-Step 'build native' { cmake --build $build } | Out-Host
    Write-Host '==> test native (ctest)' -ForegroundColor Cyan
    ctest --test-dir $build -j 2 --output-on-failure --output-junit (Join-Path $results 'native.junit.xml') | Out-Host
    return $LASTEXITCODE -eq 0
}

# The official OpenAI Node SDK driving a real `tilt serve` process (tests/Server.Tests/sdk); JUnit report for the
# closing count. $true when every test passed.
function Invoke-SdkTest([string] $results) {
    if ($env:TILT_SKIP_SDK -eq '1') { Write-Warning 'TILT_SKIP_SDK=1: the OpenAI Node SDK tests were not run'; return $true }
    if (-not (Get-Command node -ErrorAction SilentlyContinue)) { throw 'node not found: the OpenAI Node SDK tests (tests/Server.Tests/sdk) need Node.js 20+ and npm' }
    $sdk = Join-Path $root 'tests/Server.Tests/sdk'
    Write-Host '==> test OpenAI Node SDK' -ForegroundColor Cyan
    if (-not (Test-Path (Join-Path $sdk 'node_modules/openai'))) {
        Invoke-Step 'npm ci (openai)' { npm ci --prefix $sdk --no-audit --no-fund } | Out-Host
    }
    $env:TILT_CLI = Join-Path $root "src/Cli/bin/$configuration/net10.0/tilt.dll"
    Push-Location $sdk
    try {
        node --test --test-reporter=spec --test-reporter-destination=stdout `
            --test-reporter=junit "--test-reporter-destination=$(Join-Path $results 'openai-sdk.junit.xml')" sdk.test.mjs | Out-Host
        return $LASTEXITCODE -eq 0
    }
    finally {
        Pop-Location
    }
}

# Two `tilt serve` replicas behind HAProxy (deploy/haproxy/haproxy.cfg), all on 127.0.0.1: equal outputs through the
# balancer, drain on SIGTERM, failover on SIGKILL (tests/cluster/cluster_test.py, under a minute). Needs the src/Cli
# build, HAProxy (Debian's package) and Python 3. JUnit report for the closing count; the measured throughput and
# failover numbers go to cluster-numbers.txt beside it. $true when every check passed.
function Invoke-ClusterTest([string] $results) {
    if ($env:TILT_SKIP_CLUSTER -eq '1') { Write-Warning 'TILT_SKIP_CLUSTER=1: the HAProxy cluster test was not run'; return $true }
    if (-not (Get-Command haproxy -ErrorAction SilentlyContinue)) { throw 'haproxy not found: the cluster test needs HAProxy (apt-get install haproxy)' }
    if (-not (Get-Command python3 -ErrorAction SilentlyContinue)) { throw 'python3 not found: the cluster test (tests/cluster) needs Python 3' }
    New-Item -ItemType Directory -Force -Path $results | Out-Null
    Write-Host '==> test cluster (HAProxy + 2 replicas)' -ForegroundColor Cyan
    python3 (Join-Path $root 'tests/cluster/cluster_test.py') --tilt (Join-Path $root "src/Cli/bin/$configuration/net10.0/tilt.dll") `
        --haproxy-cfg (Join-Path $root 'deploy/haproxy/haproxy.cfg') --junit (Join-Path $results 'cluster.junit.xml') `
        --report (Join-Path $results 'cluster-numbers.txt') | Out-Host
    return $LASTEXITCODE -eq 0
}

# One closing line over every suite, read from the TRX and JUnit files the runs wrote into $results.
function Write-TestCount([string] $results, [string[]] $failedProjects) {
    $passed = 0; $failed = 0; $skipped = 0
    foreach ($trx in Get-ChildItem -Path $results -Filter '*.trx' -ErrorAction SilentlyContinue) {
        [xml] $doc = Get-Content -Raw $trx.FullName
        $counters = $doc.TestRun.ResultSummary.Counters
        $passed += [int] $counters.passed
        $failed += [int] $counters.failed
        $skipped += [int] $counters.notExecuted
    }
    foreach ($junit in Get-ChildItem -Path $results -Filter '*.junit.xml' -ErrorAction SilentlyContinue) {
        [xml] $doc = Get-Content -Raw $junit.FullName
        if ($doc.DocumentElement.Name -eq 'testsuites') {
            # node --test's JUnit reporter: count the test cases themselves.
            foreach ($case in $doc.SelectNodes('//testcase')) {
                if ($case.SelectSingleNode('failure|error')) { $failed++ }
                elseif ($case.SelectSingleNode('skipped')) { $skipped++ }
                else { $passed++ }
            }
            continue
        }
        $suite = $doc.testsuite
        $notRun = [int] $suite.skipped + [int] $suite.disabled
        $passed += [int] $suite.tests - [int] $suite.failures - $notRun
        $failed += [int] $suite.failures
        $skipped += $notRun
    }
    if ($passed + $failed -eq 0) { throw 'no test ran' }
    Write-Host "$passed passed, $failed failed, $skipped skipped"
    if ($failedProjects.Count -gt 0 -or $failed -gt 0) { throw "tests failed in: $($failedProjects -join ', ')" }
}

function Invoke-Test {
    $results = Join-Path $root 'artifacts/test-results'
    if (Test-Path $results) { Remove-Item -Recurse -Force $results }
    $projects = Get-ChildItem -Path (Join-Path $root 'tests') -Recurse -Filter '*.Tests.csproj' | Sort-Object FullName
    $failedProjects = @()
    foreach ($project in $projects) {
        Write-Host "==> test $($project.BaseName)" -ForegroundColor Cyan
        dotnet test $project.FullName -c $configuration --no-build -nologo `
            --logger "trx;LogFileName=$($project.BaseName).trx" --results-directory $results
        if ($LASTEXITCODE -ne 0) { $failedProjects += $project.BaseName }
    }
    if (-not (Invoke-SdkTest $results)) { $failedProjects += 'OpenAI Node SDK (tests/Server.Tests/sdk)' }
    if (-not (Invoke-NativeTest $results)) { $failedProjects += 'native (ctest)' }
    if (-not (Invoke-ClusterTest $results)) { $failedProjects += 'cluster (tests/cluster)' }
    Write-TestCount $results $failedProjects
}

# The cluster test alone: build the CLI, run it, count it.
function Invoke-ClusterTestTask {
    $results = Join-Path $root 'artifacts/cluster-test-results'
    if (Test-Path $results) { Remove-Item -Recurse -Force $results }
    Invoke-Step "build src/Cli ($configuration)" { dotnet build (Join-Path $root 'src/Cli') -c $configuration -nologo }
    $failedProjects = @()
    if (-not (Invoke-ClusterTest $results)) { $failedProjects += 'cluster (tests/cluster)' }
    Write-TestCount $results $failedProjects
}

# The end-to-end tables, with the C loop over llama.h (../shared/bench/rawbatch, built here against the libraries the
# engine loads) as the baseline beside the engine in the same script. Run it on a quiet machine (see docs/performance.md).
function Invoke-Perf {
    $results = Join-Path $root 'docs/results'
    New-Item -ItemType Directory -Force -Path $results | Out-Null
    Invoke-Step "build src/Interop ($configuration)" { dotnet build (Join-Path $root 'src/Interop') -c $configuration -nologo }
    $build = Join-Path $root 'native/build'
    $managed = Join-Path $root "src/Interop/bin/$configuration/net10.0"
    Invoke-Step 'configure native' { cmake -S (Join-Path $root 'native') -B $build -DCMAKE_BUILD_TYPE=Release "-DTILT_MANAGED_DIR=$managed" }
    Invoke-Step 'build the C loop (tilt_rawbatch)' { cmake --build $build --target tilt_rawbatch }
    $rawbatch = Join-Path $build 'bin/tilt_rawbatch'
    $load = if (Test-Path /proc/loadavg) { (Get-Content /proc/loadavg).Split(' ')[0] } else { 'unknown' }
    Write-Host "load average before: $load (numbers are results only on a quiet machine: well under 1)"
    foreach ($preset in @('15m', '110m')) {
        Invoke-Step "perf $preset" {
            dotnet run --project (Join-Path $root 'bench/Tilt.Bench') -c Release -- e2e --model $preset --k 1,16,64 `
                --tokens 32 --reps 5 --threads 1,all --rawbatch $rawbatch `
                --out (Join-Path $results "perf-$preset.json") --markdown (Join-Path $results "perf-$preset.md")
        }
    }
}

# The packages of the public libraries, all in artifacts/packages. The repository URL comes from git when it has a remote.
function Invoke-Pack {
    $packages = Join-Path $root 'artifacts/packages'
    if (Test-Path $packages) { Remove-Item -Recurse -Force $packages }
    $extra = @()
    $remote = git -C $root remote get-url origin 2>$null
    if ($LASTEXITCODE -eq 0 -and $remote) { $extra += "-p:RepositoryUrl=$remote" }
    $global:LASTEXITCODE = 0
    Invoke-Step 'pack' { dotnet pack (Join-Path $root 'src/Packages.slnf') -c $configuration -o $packages -nologo @extra }
    Get-ChildItem $packages | ForEach-Object { Write-Host ("{0,-40} {1,8:N0} KB" -f $_.Name, ($_.Length / 1KB)) }
}

# The example service built from the packages only, as a consumer would. A fresh prerelease version per run, so NuGet's
# cache never serves an older pack of the same version.
function Invoke-Example {
    $version = '0.1.0-local.' + (Get-Date -Format 'yyyyMMddHHmmss')
    $packages = Join-Path $root 'artifacts/packages'
    if (Test-Path $packages) { Remove-Item -Recurse -Force $packages }
    Invoke-Step 'pack' { dotnet pack (Join-Path $root 'src/Packages.slnf') -c $configuration -o $packages -nologo "-p:Version=$version" }
    Invoke-Step 'example' { dotnet run --project (Join-Path $root 'examples/TiltService') -c $configuration "-p:TiltVersion=$version" }
}

# The commit LLamaSharp 0.30.0 binds: its P/Invoke signatures and struct layouts are those of this llama.cpp.
$llamaCommit = '815a2a5'

function Invoke-Llama {
    if (-not $LlamaSource) { throw "llama: name the llama.cpp source tree with -LlamaSource DIR (or `$env:TILT_LLAMA_SRC); get it with: git clone https://github.com/ggml-org/llama.cpp; git -C llama.cpp checkout $llamaCommit" }
    $src = (Resolve-Path $LlamaSource -ErrorAction Stop).Path
    if (-not (Test-Path (Join-Path $src 'include/llama.h'))) { throw "llama: $src has no include/llama.h; is it a llama.cpp source tree?" }
    if (-not (Get-Command git -ErrorAction SilentlyContinue)) { throw 'llama: git not found; it is needed to check the commit of the source tree' }
    $head = git -C $src rev-parse HEAD 2>$null
    if ($LASTEXITCODE -ne 0 -or -not $head) { throw "llama: cannot tell the commit of $src (not a git checkout); clone it and check out $llamaCommit" }
    if (-not $head.StartsWith($llamaCommit)) { throw "llama: $src is at commit $($head.Substring(0, 9)), but LLamaSharp 0.30.0 binds $llamaCommit; run: git -C $src checkout $llamaCommit" }
    $dirty = git -C $src status --porcelain --untracked-files=no
    if ($dirty) { Write-Warning "llama: $src has local changes; the build may not match $llamaCommit" }
    foreach ($tool in @('cmake')) { if (-not (Get-Command $tool -ErrorAction SilentlyContinue)) { throw "llama: $tool not found" } }

    $flavor = if ($Cuda) { 'cuda' } else { 'cpu' }
    $flags = @('-DCMAKE_BUILD_TYPE=Release', '-DBUILD_SHARED_LIBS=ON', '-DGGML_NATIVE=ON', '-DGGML_OPENMP=ON', '-DLLAMA_CURL=OFF',
        '-DLLAMA_BUILD_TESTS=OFF', '-DLLAMA_BUILD_EXAMPLES=OFF', '-DLLAMA_BUILD_TOOLS=OFF', '-DLLAMA_BUILD_SERVER=OFF',
        # The libraries find each other next to themselves wherever they are copied.
        '-DCMAKE_INSTALL_LIBDIR=lib', '-DCMAKE_BUILD_WITH_INSTALL_RPATH=ON', '-DCMAKE_INSTALL_RPATH=$ORIGIN')
    if ($Cuda) {
        if (-not (Get-Command nvcc -ErrorAction SilentlyContinue)) { throw 'llama -Cuda: nvcc not found (install the CUDA toolkit, or build without -Cuda)' }
        $flags += @('-DGGML_CUDA=ON', '-DCMAKE_CUDA_ARCHITECTURES=native')
    }
    $build = Join-Path $root "artifacts/llama/build-$flavor"
    $prefix = Join-Path $root "artifacts/llama/$flavor"
    Invoke-Step "configure llama.cpp $llamaCommit ($flavor)" { cmake -S $src -B $build @flags }
    $jobs = [Environment]::ProcessorCount
    Invoke-Step "build llama.cpp ($flavor, $jobs jobs)" { cmake --build $build --config Release -j $jobs }
    Invoke-Step "install llama.cpp to $prefix" { cmake --install $build --prefix $prefix --config Release }
    $lib = if ($IsWindows) { Join-Path $prefix 'bin/llama.dll' } elseif ($IsMacOS) { Join-Path $prefix 'lib/libllama.dylib' } else { Join-Path $prefix 'lib/libllama.so' }
    if (-not (Test-Path $lib)) { throw "llama: the build produced no $lib" }
    # The engine checks the library's ABI when it binds it; a short generation proves the whole path.
    Invoke-Step 'check the library with tilt generate' {
        dotnet run --project (Join-Path $root 'src/Cli') -c $configuration -- generate --native-lib $lib --max-tokens 8 --verbose
    }
    Write-Host "llama.cpp $llamaCommit ($flavor) is in $prefix; use: --native-lib $lib   or   TILT_NATIVE_LIB=$lib"
}

function Invoke-Bench {
    Invoke-Step 'bench' { dotnet run --project (Join-Path $root 'bench/Tilt.Bench') -c Release -- @benchArgs }
}

foreach ($task in $Tasks) {
    switch ($task) {
        'restore' { Invoke-Restore }
        'build' { Invoke-Build }
        'test' { Invoke-Restore; Invoke-Build; Invoke-Test }
        'cluster-test' { Invoke-ClusterTestTask }
        'bench' { Invoke-Bench }
        'perf' { Invoke-Perf }
        'llama' { Invoke-Llama }
        'pack' { Invoke-Pack }
        'example' { Invoke-Example }
        'all' { Invoke-Restore; Invoke-Build; Invoke-Test }
        default { throw "unknown task '$task' (restore, build, test, cluster-test, pack, example, bench, perf, llama, all)" }
    }
}
