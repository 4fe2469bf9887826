using System.Text.RegularExpressions;
using Tilt.Tests;
using YamlDotNet.Core;
using YamlDotNet.Core.Events;
using YamlDotNet.Serialization;

namespace Tilt.Server.Tests;

/// <summary>
/// deploy/k8s and deploy/Dockerfile checked against each other and against the server they run: no cluster and no
/// schema validator here (kubeconform is not packaged for apt, npm or NuGet), so the manifests are parsed (YamlDotNet)
/// and every field a mistake would break is checked: kinds and API versions, label selectors, probe paths and ports
/// against the routes the server answers, the termination grace period against preStop and the drain, resources, the
/// model and results volumes, the image, the shards and their merge.
/// </summary>
public sealed class DeployManifestTests
{
    private static readonly string Deploy = Path.Combine(TestPaths.RepositoryRoot, "deploy");

    // Kinds and the API versions a current cluster serves them at (the ones these manifests may use).
    private static readonly Dictionary<string, string> ApiVersions = new()
    {
        ["Deployment"] = "apps/v1",
        ["Service"] = "v1",
        ["PersistentVolumeClaim"] = "v1",
        ["HorizontalPodAutoscaler"] = "autoscaling/v2",
        ["Job"] = "batch/v1",
    };

    private static readonly Lazy<List<(string File, Dictionary<object, object> Doc)>> Documents = new(Load);

    private static List<(string File, Dictionary<object, object> Doc)> Load()
    {
        var deserializer = new DeserializerBuilder().Build();
        var list = new List<(string, Dictionary<object, object>)>();
        foreach (var file in Directory.GetFiles(Path.Combine(Deploy, "k8s"), "*.yaml").Order())
        {
            using var reader = new StreamReader(file);
            var parser = new Parser(reader);
            parser.Consume<StreamStart>();
            while (parser.Accept<DocumentStart>(out _))
            {
                var doc = deserializer.Deserialize<object>(parser);
                if (doc is null) continue;
                Assert.True(doc is Dictionary<object, object>, $"{Path.GetFileName(file)}: a document that is not a mapping");
                list.Add((Path.GetFileName(file), (Dictionary<object, object>)doc));
            }
        }
        return list;
    }

    private static IEnumerable<Dictionary<object, object>> OfKind(string kind) => Documents.Value.Where(d => Str(d.Doc, "kind") == kind).Select(d => d.Doc);

    private static Dictionary<object, object> Single(string kind, string name) =>
        Assert.Single(OfKind(kind), d => Str(Map(d, "metadata"), "name") == name);

    private static Dictionary<object, object> Map(Dictionary<object, object> m, string key) =>
        m.TryGetValue(key, out var v) && v is Dictionary<object, object> d ? d : throw new Xunit.Sdk.XunitException($"'{key}' is missing or not a mapping");

    private static List<object> Seq(Dictionary<object, object> m, string key) =>
        m.TryGetValue(key, out var v) && v is List<object> l ? l : throw new Xunit.Sdk.XunitException($"'{key}' is missing or not a list");

    private static string? Str(Dictionary<object, object> m, string key) => m.TryGetValue(key, out var v) ? v as string : null;

    private static int Int(Dictionary<object, object> m, string key) =>
        int.TryParse(Str(m, key), out int n) ? n : throw new Xunit.Sdk.XunitException($"'{key}' is missing or not an integer");

    private static Dictionary<string, string> Labels(Dictionary<object, object> m) =>
        m.ToDictionary(kv => (string)kv.Key, kv => (string)kv.Value);

    private static Dictionary<object, object> PodSpec(Dictionary<object, object> workload) => Map(Map(Map(workload, "spec"), "template"), "spec");

    private static IEnumerable<Dictionary<object, object>> Containers(Dictionary<object, object> workload) =>
        Seq(PodSpec(workload), "containers").Cast<Dictionary<object, object>>();

    private static IEnumerable<Dictionary<object, object>> Workloads() => OfKind("Deployment").Concat(OfKind("Job"));

    /// <summary>The value after <paramref name="flag"/> in a container's args (or in its one shell command line).</summary>
    private static string? Flag(IReadOnlyList<string> args, string flag)
    {
        int i = args.ToList().IndexOf(flag);
        return i >= 0 && i + 1 < args.Count ? args[i + 1] : null;
    }

    private static List<string> Args(Dictionary<object, object> container) =>
        container.TryGetValue("args", out var a) && a is List<object> l ? l.Cast<string>().ToList() : [];

    /// <summary>A `sh -c` command line split into words (quotes removed; enough for these manifests).</summary>
    private static List<string> ShellWords(string line) =>
        Regex.Matches(line, "\"([^\"]*)\"|(\\S+)").Select(m => m.Groups[1].Success ? m.Groups[1].Value : m.Groups[2].Value).ToList();

    [Fact]
    public void Every_document_has_a_known_kind_at_its_api_version_and_a_name()
    {
        var docs = Documents.Value;
        Assert.NotEmpty(docs);
        foreach (var (file, doc) in docs)
        {
            string kind = Str(doc, "kind") ?? throw new Xunit.Sdk.XunitException($"{file}: a document without kind");
            Assert.True(ApiVersions.TryGetValue(kind, out var version), $"{file}: unexpected kind {kind}");
            Assert.Equal(version, Str(doc, "apiVersion"));
            Assert.Matches("^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", Str(Map(doc, "metadata"), "name"));
            Assert.Empty(doc.Keys.Cast<string>().Except(["apiVersion", "kind", "metadata", "spec"]));
        }
        foreach (var kind in ApiVersions.Keys) Assert.Contains(docs, d => Str(d.Doc, "kind") == kind);
    }

    [Fact]
    public void Selectors_match_the_pod_labels()
    {
        var deployment = Single("Deployment", "tilt");
        var podLabels = Labels(Map(Map(Map(Map(deployment, "spec"), "template"), "metadata"), "labels"));
        var selector = Labels(Map(Map(Map(deployment, "spec"), "selector"), "matchLabels"));
        Assert.NotEmpty(selector);
        Assert.All(selector, kv => Assert.Equal(kv.Value, podLabels.GetValueOrDefault(kv.Key)));
        foreach (var service in OfKind("Service"))
        {
            var s = Labels(Map(Map(service, "spec"), "selector"));
            Assert.NotEmpty(s);
            Assert.All(s, kv => Assert.Equal(kv.Value, podLabels.GetValueOrDefault(kv.Key)));
            // Every service port reaches the container's named port.
            var ports = Seq(Map(service, "spec"), "ports").Cast<Dictionary<object, object>>();
            Assert.All(ports, p => Assert.Equal("http", Str(p, "targetPort")));
        }
        var hpa = Map(Single("HorizontalPodAutoscaler", "tilt"), "spec");
        var target = Map(hpa, "scaleTargetRef");
        Assert.Equal(("apps/v1", "Deployment", "tilt"), (Str(target, "apiVersion"), Str(target, "kind"), Str(target, "name")));
        Assert.True(Int(hpa, "minReplicas") is >= 1 and var min && min <= Int(hpa, "maxReplicas"));
    }

    [Fact]
    public async Task The_probes_name_the_servers_health_routes_on_its_port_and_need_no_key()
    {
        var container = Assert.Single(Containers(Single("Deployment", "tilt")));
        var args = Args(container);
        Assert.Equal("serve", args[0]);
        Assert.Equal("0.0.0.0", Flag(args, "--host"));
        var port = Assert.Single(Seq(container, "ports").Cast<Dictionary<object, object>>());
        Assert.Equal(Flag(args, "--port"), Str(port, "containerPort"));
        string portName = Str(port, "name")!;
        var probes = new Dictionary<string, string>();
        foreach (var (probe, path) in new[] { ("readinessProbe", "/health/ready"), ("livenessProbe", "/health/live") })
        {
            var get = Map(Map(container, probe), "httpGet");
            Assert.Equal(path, Str(get, "path"));
            Assert.Equal(portName, Str(get, "port"));
            probes[probe] = path;
        }

        // The routes answer 200 on a loaded server even with an API key set (kubelets send none), and the HPA's metric
        // is one the server exports.
        await using var host = await Host.StartAsync(options: new ServerOptions { ApiKey = "k8s-probe-test" });
        foreach (var path in probes.Values)
        {
            using var r = await host.Client.GetAsync(path);
            Assert.Equal(200, (int)r.StatusCode);
        }
        var hpaMetric = Map(Map((Dictionary<object, object>)Seq(Map(Single("HorizontalPodAutoscaler", "tilt"), "spec"), "metrics")[0], "pods"), "metric");
        using var request = new HttpRequestMessage(HttpMethod.Get, "/metrics");
        request.Headers.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", "k8s-probe-test");
        using var metrics = await host.Client.SendAsync(request);
        // A series of the metric, per model (labelled) as the server exports every engine gauge.
        Assert.Matches($"\n{Str(hpaMetric, "name")}\\{{model=\"[^\"]+\"\\}} ", await metrics.Content.ReadAsStringAsync());
    }

    [Fact]
    public void The_grace_period_covers_preStop_the_drain_and_the_shutdown_margin()
    {
        var deployment = Single("Deployment", "tilt");
        var container = Assert.Single(Containers(deployment));
        int drain = int.Parse(Flag(Args(container), "--drain-seconds") ?? throw new Xunit.Sdk.XunitException("--drain-seconds is not set"));
        var preStop = Seq(Map(Map(Map(container, "lifecycle"), "preStop"), "exec"), "command").Cast<string>().ToList();
        Assert.Equal("sleep", preStop[0]);
        int sleep = int.Parse(preStop[1]);
        Assert.InRange(sleep, 1, 30);
        int grace = Int(PodSpec(deployment), "terminationGracePeriodSeconds");
        int needed = sleep + drain + (int)TiltServer.ShutdownMargin.TotalSeconds;
        Assert.True(grace >= needed, $"terminationGracePeriodSeconds {grace} < preStop {sleep} + drain {drain} + shutdown margin {TiltServer.ShutdownMargin.TotalSeconds}");
        Assert.True(grace <= needed + 10, $"terminationGracePeriodSeconds {grace} is far above what the drain needs ({needed})");
        // A rolling update never takes a replica away before its successor is ready.
        Assert.Equal("0", Str(Map(Map(Map(deployment, "spec"), "strategy"), "rollingUpdate"), "maxUnavailable"));
    }

    [Fact]
    public void Every_container_requests_resources_and_runs_the_image_the_Dockerfile_builds()
    {
        string dockerfile = File.ReadAllText(Path.Combine(Deploy, "Dockerfile"));
        Assert.Matches(@"(?m)^FROM mcr\.microsoft\.com/dotnet/aspnet:10\.0\s*$", dockerfile);
        Assert.Contains("dotnet publish src/Cli", dockerfile);
        Assert.Contains("libgomp1", dockerfile);
        Assert.Contains("ENTRYPOINT [\"dotnet\", \"/app/tilt.dll\"]", dockerfile);
        string tag = Regex.Match(dockerfile, @"docker build -f deploy/Dockerfile -t (\S+) \.").Groups[1].Value;
        Assert.NotEmpty(tag);
        var containers = Workloads().SelectMany(Containers).ToList();
        Assert.True(containers.Count >= 3);
        foreach (var c in containers)
        {
            Assert.Equal(tag, Str(c, "image"));
            var requests = Map(Map(c, "resources"), "requests");
            Assert.False(string.IsNullOrEmpty(Str(requests, "cpu")), $"{Str(c, "name")}: no cpu request");
            Assert.False(string.IsNullOrEmpty(Str(requests, "memory")), $"{Str(c, "name")}: no memory request");
        }
    }

    [Fact]
    public void Volumes_are_claims_that_exist_and_the_model_comes_from_a_read_only_one()
    {
        var claims = OfKind("PersistentVolumeClaim").Select(c => Str(Map(c, "metadata"), "name")).ToHashSet();
        foreach (var workload in Workloads())
        {
            var volumes = Seq(PodSpec(workload), "volumes").Cast<Dictionary<object, object>>().ToDictionary(v => Str(v, "name")!);
            foreach (var v in volumes.Values.Where(v => v.ContainsKey("persistentVolumeClaim")))
                Assert.Contains(Str(Map(v, "persistentVolumeClaim"), "claimName"), claims);
            foreach (var c in Containers(workload))
            {
                var mounts = Seq(c, "volumeMounts").Cast<Dictionary<object, object>>().ToList();
                Assert.All(mounts, m => Assert.True(volumes.ContainsKey(Str(m, "name")!), $"volumeMount {Str(m, "name")} names no volume"));
                // A container with a command runs one `sh -c` line; the others pass the CLI's arguments as they are.
                var words = c.ContainsKey("command") ? ShellWords(Args(c).Single()) : Args(c);
                if (Flag(words, "--model") is not { } model) continue;
                var mount = Assert.Single(mounts, m => model.StartsWith(Str(m, "mountPath")! + "/", StringComparison.Ordinal));
                Assert.Equal("true", Str(mount, "readOnly"));
                Assert.Equal("tilt-models", Str(Map(volumes[Str(mount, "name")!], "persistentVolumeClaim"), "claimName"));
            }
        }
    }

    [Fact]
    public void The_indexed_job_shards_the_sweep_and_the_merge_job_reads_every_shard()
    {
        var shards = Single("Job", "tilt-evaluate-shards");
        var spec = Map(shards, "spec");
        Assert.Equal("Indexed", Str(spec, "completionMode"));
        int n = Int(spec, "completions");
        Assert.Equal(n, Int(spec, "parallelism"));
        var container = Assert.Single(Containers(shards));
        Assert.Equal(["/bin/sh", "-c"], Seq(container, "command").Cast<string>());
        var words = ShellWords(Assert.Single(Args(container)));
        Assert.Equal(["exec", "dotnet", "/app/tilt.dll", "evaluate"], words.Take(4));
        Assert.Equal($"$JOB_COMPLETION_INDEX/{n}", Flag(words, "--shard"));
        string shardOut = Flag(words, "--out")!;
        Assert.EndsWith("/shard-$JOB_COMPLETION_INDEX", shardOut);
        string sweep = shardOut[..shardOut.LastIndexOf('/')];

        var merge = Single("Job", "tilt-evaluate-merge");
        var margs = Args(Assert.Single(Containers(merge)));
        Assert.Equal("evaluate", margs[0]);
        int at = margs.IndexOf("--merge"), outAt = margs.IndexOf("--out");
        Assert.True(at > 0 && outAt > at);
        Assert.Equal(Enumerable.Range(0, n).Select(i => $"{sweep}/shard-{i}"), margs[(at + 1)..outAt]);
        Assert.DoesNotContain(margs[outAt + 1], margs[(at + 1)..outAt]);

        // Shards and merge see the same results volume at the same path.
        string Claim(Dictionary<object, object> job, string path)
        {
            var c = Containers(job).Single();
            var mount = Seq(c, "volumeMounts").Cast<Dictionary<object, object>>().Single(m => path.StartsWith(Str(m, "mountPath")! + "/", StringComparison.Ordinal));
            var volume = Seq(PodSpec(job), "volumes").Cast<Dictionary<object, object>>().Single(v => Str(v, "name") == Str(mount, "name"));
            return Str(Map(volume, "persistentVolumeClaim"), "claimName")!;
        }
        Assert.Equal("tilt-results", Claim(shards, shardOut));
        Assert.Equal("tilt-results", Claim(merge, margs[outAt + 1]));
        foreach (var job in new[] { shards, merge }) Assert.Contains(Str(PodSpec(job), "restartPolicy"), new[] { "Never", "OnFailure" });
    }
}
