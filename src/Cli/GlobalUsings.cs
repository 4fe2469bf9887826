// Every command is a front-end of the engine: the namespaces most of them read are imported once here, so a command's
// file lists only what sets it apart.
global using System.CommandLine;
global using System.Diagnostics;
global using System.Globalization;
global using System.Text;
global using System.Text.Json;
global using Tilt.Engine;
global using Tilt.Engine.Decoding;
global using Tilt.Engine.Heads;
global using Tilt.Engine.IO;
global using Tilt.Engine.Models;
global using Tilt.Engine.Requests;
global using Tilt.Engine.Rewards;
global using Tilt.Engine.Rewards.Specs;
global using Tilt.Engine.Statistics;
global using Tilt.Engine.Training;
global using Tilt.Engine.Values;
global using Tilt.Kernels;
