namespace Tilt.Engine.Statistics;

/// <summary>How far an aligned policy has moved from the base model, read from its KL [M26].</summary>
public enum KlBudgetBand
{
    /// <summary>KL &lt; 8 nats: probably fine.</summary>
    Fine,

    /// <summary>8 &lt;= KL &lt;= 15 nats: between docs/math.md's "fine" and "inspect" marks.</summary>
    Caution,

    /// <summary>15 &lt; KL &lt;= 100 nats: inspect outputs for reward hacking.</summary>
    InspectForRewardHacking,

    /// <summary>KL &gt; 100 nats: results are unlikely to be useful.</summary>
    Useless,
}

/// <summary>
/// The [M26] rule of thumb as bands a CLI or a result can show. docs/math.md marks &lt; 8 as fine, &gt; 15 as worth
/// inspecting and &gt; 100 as useless, and says nothing about 8..15; that gap gets its own band, Caution,
/// rather than being silently folded into a neighbour. Each band's lower edge belongs to the band
/// above the previous mark: 8 is Caution, 15 is still Caution, 100 is still InspectForRewardHacking.
/// </summary>
public static class KlBudget
{
    /// <summary>KL values below this are <see cref="KlBudgetBand.Fine"/>.</summary>
    public const double FineBelow = 8.0;

    /// <summary>KL values up to and including this (and &gt;= <see cref="FineBelow"/>) are <see cref="KlBudgetBand.Caution"/>.</summary>
    public const double CautionUpTo = 15.0;

    /// <summary>KL values above this are <see cref="KlBudgetBand.Useless"/>.</summary>
    public const double UsefulUpTo = 100.0;

    /// <summary>The band of a KL value in nats. Negative values (sampling noise of an estimate) are Fine.</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="kl"/> is NaN.</exception>
    public static KlBudgetBand Classify(double kl)
    {
        if (double.IsNaN(kl))
        {
            throw new ArgumentOutOfRangeException(nameof(kl), kl, "kl is NaN, which has no budget band.");
        }

        return kl switch
        {
            < FineBelow => KlBudgetBand.Fine,
            <= CautionUpTo => KlBudgetBand.Caution,
            <= UsefulUpTo => KlBudgetBand.InspectForRewardHacking,
            _ => KlBudgetBand.Useless,
        };
    }

    /// <summary>A one-line description of a band, for people reading CLI output or a report.</summary>
    public static string Describe(KlBudgetBand band) => band switch
    {
        KlBudgetBand.Fine => "fine: KL < 8 nats, the policy stays close to the base model",
        KlBudgetBand.Caution => "caution: KL 8-15 nats, a large move from the base model; spot-check outputs",
        KlBudgetBand.InspectForRewardHacking => "inspect: KL 15-100 nats, inspect outputs for reward hacking",
        KlBudgetBand.Useless => "useless: KL > 100 nats, results are unlikely to be useful",
        _ => throw new ArgumentOutOfRangeException(nameof(band), band, "Unknown KL budget band."),
    };

    /// <summary><see cref="Describe(KlBudgetBand)"/> of <see cref="Classify"/>.</summary>
    public static string Describe(double kl) => Describe(Classify(kl));
}
