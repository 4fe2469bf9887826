namespace Tilt.Engine.Training;

/// <summary>
/// Where a training run stands: the phase ("rollouts", "fit", "cd-q expansion", "features", ...) and how far it
/// got, in the phase's own units (rollouts, rows, iterations). Reported through <see cref="IProgress{T}"/>
/// synchronously on the training thread.
/// </summary>
/// <param name="Phase">Short name of the phase.</param>
/// <param name="Done">Units finished.</param>
/// <param name="Total">Units in the phase.</param>
public readonly record struct TrainingProgress(string Phase, long Done, long Total)
{
    /// <summary>Done / Total in [0, 1] (1 for an empty phase).</summary>
    public double Fraction => Total <= 0 ? 1.0 : Math.Clamp((double)Done / Total, 0.0, 1.0);
}
