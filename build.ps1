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
    test     build, then run every test project and print "N passed, N failed"
    bench    run the benchmarks (pass BenchmarkDotNet arguments after --, e.g. -- --filter '*Sample*')
    perf     regenerate the synthetic 15M and 110M models (cached) and the end-to-end performance tables
             in docs/results/ (engine vs raw llama.cpp batch decode vs naive best-of-n); takes ~30 minutes
    all      restore, build, test
#>
param(
    [Parameter(Position = 0, ValueFromRemainingArguments = $true)]
    [string[]] $Tasks = @('all')
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
# ctest (C API tests, the C sample under valgrind, the Python example and tests). $true when everything passed.
function Invoke-NativeTest([string] $results) {
    if ($env:TILT_SKIP_NATIVE -eq '1') { Write-Warning 'TILT_SKIP_NATIVE=1: the C API tests were not run'; return $true }
    if (-not (Get-Command cmake -ErrorAction SilentlyContinue)) { throw 'cmake not found: the C API tests (native/) need cmake, ctest and a C compiler' }
    $build = Join-Path $root 'native/build'
    $managed = Join-Path $root "src/Interop/bin/$configuration/net10.0"
    # Everything goes to the host: this function's output is its result.
    Invoke-Step 'configure native' { cmake -S (Join-Path $root 'native') -B $build "-DTILT_MANAGED_DIR=$managed" } | Out-Host
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

    # One closing line over every project and the native suite, read from the TRX and JUnit files the runs wrote.
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

function Invoke-Perf {
    $results = Join-Path $root 'docs/results'
    New-Item -ItemType Directory -Force -Path $results | Out-Null
    foreach ($preset in @('15m', '110m')) {
        Invoke-Step "perf $preset" {
            dotnet run --project (Join-Path $root 'bench/Tilt.Bench') -c Release -- e2e --model $preset --k 1,4,16,64 `
                --tokens 32 --reps 3 --out (Join-Path $results "perf-$preset.json") --markdown (Join-Path $results "perf-$preset.md")
        }
    }
}

function Invoke-Bench {
    Invoke-Step 'bench' { dotnet run --project (Join-Path $root 'bench/Tilt.Bench') -c Release -- @benchArgs }
}

foreach ($task in $Tasks) {
    switch ($task) {
        'restore' { Invoke-Restore }
        'build' { Invoke-Build }
        'test' { Invoke-Restore; Invoke-Build; Invoke-Test }
        'bench' { Invoke-Bench }
        'perf' { Invoke-Perf }
        'all' { Invoke-Restore; Invoke-Build; Invoke-Test }
        default { throw "unknown task '$task' (restore, build, test, bench, perf, all)" }
    }
}
