using System.Buffers;
using System.Text;
using Tilt.Engine.Rewards.Specs;

namespace Tilt.Engine.Rewards;

/// <summary>One objective of a <see cref="WeightedReward"/>: weight w_i and reward r_i.</summary>
public readonly record struct WeightedTerm(double Weight, IReward Reward);

/// <summary>
/// Multi-objective reward [M22]: r = sum_i w_i * r_i, with weights chosen per request. Weights may be negative (a
/// penalty) or zero. A term that is itself a <see cref="WeightedReward"/> is flattened (its weights multiplied in),
/// so <see cref="Description"/> is always a flat sum that <see cref="RewardSpec"/> reads back.
/// Spec: <c>W1*A+W2*B+...</c> (a weight of 1 may be left out).
/// </summary>
public sealed class WeightedReward : IReward
{
    private readonly WeightedTerm[] _terms;

    /// <exception cref="ArgumentException">No terms, a null reward or a non-finite weight.</exception>
    public WeightedReward(IEnumerable<WeightedTerm> terms)
    {
        ArgumentNullException.ThrowIfNull(terms);
        var flat = new List<WeightedTerm>();
        foreach (WeightedTerm term in terms)
        {
            if (term.Reward is null)
            {
                throw new ArgumentException("a weighted term has no reward", nameof(terms));
            }

            if (!double.IsFinite(term.Weight))
            {
                throw new ArgumentException($"the weight of '{term.Reward.Description}' must be finite, got {RewardExtensions.FormatNumber(term.Weight)}", nameof(terms));
            }

            if (term.Reward is WeightedReward inner)
            {
                flat.AddRange(inner._terms.Select(t => t with { Weight = term.Weight * t.Weight }));
            }
            else
            {
                flat.Add(term);
            }
        }

        if (flat.Count == 0)
        {
            throw new ArgumentException("a weighted reward needs at least one term", nameof(terms));
        }

        _terms = [.. flat];
        Description = Describe(_terms);
        NeedsHiddenState = _terms.Any(t => t.Reward.NeedsHiddenState);
    }

    /// <summary>The terms, flattened, in order.</summary>
    public IReadOnlyList<WeightedTerm> Terms => _terms;

    /// <summary>"W*A+B+-W*C": each term's weight (left out when 1) and description, joined by '+'.</summary>
    public string Description { get; }

    public bool NeedsHiddenState { get; }

    public void Score(IReadOnlyList<RewardInput> candidates, Span<double> rewards)
    {
        ArgumentNullException.ThrowIfNull(candidates);
        int n = candidates.Count;
        Span<double> sum = rewards[..n];
        sum.Clear();
        double[] rented = ArrayPool<double>.Shared.Rent(n);
        try
        {
            Span<double> member = rented.AsSpan(0, n); // [candidates]
            foreach (WeightedTerm term in _terms)
            {
                term.Reward.ScoreChecked(candidates, member);
                for (int i = 0; i < n; i++)
                {
                    sum[i] += term.Weight * member[i];
                }
            }
        }
        finally
        {
            ArrayPool<double>.Shared.Return(rented);
        }

        // Finite members times finite weights can still overflow.
        RewardExtensions.EnsureFinite(this, sum);
    }

    private static string Describe(IReadOnlyList<WeightedTerm> terms)
    {
        var text = new StringBuilder();
        foreach (WeightedTerm term in terms)
        {
            if (text.Length > 0)
            {
                text.Append('+');
            }

            if (term.Weight != 1.0)
            {
                text.Append(RewardExtensions.FormatNumber(term.Weight)).Append('*');
            }

            text.Append(term.Reward.Description);
        }

        return text.ToString();
    }
}
