using Tilt.Engine.Evaluation;
using Tilt.Engine.Requests;

namespace Tilt.Engine.Tests.Evaluation;

/// <summary>The sweep's points: beam search [M29] joins the full and quick sweeps without moving the earlier points.</summary>
public sealed class EvaluationConfigTests
{
    [Fact]
    public void A_beam_point_names_its_beams_blocks_and_block_size_and_builds_beam_options()
    {
        var point = new EvaluationConfig(EvaluationMethod.Beam, N: 2, K: 8, M: 8);
        Assert.Equal("beam-b2-k8-m8", point.Id);
        Assert.Equal("beam search (B=2, M=8)", point.Series);
        Assert.Equal(new BeamOptions { Beams = 2, K = 8, BlockSize = 8 }, point.Spec.Build());
        Assert.Equal(new BeamOptions { Beams = 4, K = 16, BlockSize = 4 }, new EvaluationConfig(EvaluationMethod.Beam, N: 4, K: 16, M: 4).Spec.Build());
        Assert.Same(point, point.FitTo(4)); // only rejection's interval is fitted to the output
    }

    [Fact]
    public void The_full_sweep_ends_with_a_beam_series_and_keeps_every_earlier_point_in_place()
    {
        var sweep = EvaluationConfig.FullSweep(16);
        var beam = sweep.Where(c => c.Method == EvaluationMethod.Beam).Select(c => c.Id).ToArray();
        Assert.Equal(["beam-b2-k4-m8", "beam-b2-k8-m8", "beam-b2-k16-m8", "beam-b4-k4-m8", "beam-b4-k8-m8", "beam-b4-k16-m8"], beam);
        // New points only add: the earlier ones keep their ids and positions (resumed folders, shards I/N).
        Assert.All(sweep.Skip(sweep.Count - beam.Length), c => Assert.Equal(EvaluationMethod.Beam, c.Method));
        Assert.Equal(sweep.Count, sweep.Select(c => c.Id).Distinct().Count());
        Assert.Equal(7 + 12 + 5 + 3 + 2, sweep.Count - beam.Length);
        Assert.Equal("bon-n1", sweep[0].Id);
        Assert.Equal("soft-bon-n16-l0.25", sweep[^(beam.Length + 1)].Id);
        Assert.All(sweep, c => Assert.NotNull(c.Spec.Build())); // every point is valid: beams <= k
    }

    [Fact]
    public void The_quick_sweep_has_one_beam_point_after_the_earlier_ones()
    {
        var quick = EvaluationConfig.QuickSweep(0);
        Assert.Equal("beam-b2-k8-m8", quick[^1].Id);
        Assert.Single(quick, c => c.Method == EvaluationMethod.Beam);
        Assert.Equal(["bon-n1", "bon-n4", "bon-n16", "blockwise-k2-m8", "blockwise-k8-m8", "tokenwise-b2-k0", "tokenwise-b0.5-k0", "rejection-n16-a0.5-e8"],
            quick.Take(quick.Count - 1).Select(c => c.Id));
    }
}
