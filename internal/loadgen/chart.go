package loadgen

import (
	"fmt"
	"image/color"
	"math"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
)

// modeColors gives each mode a fixed colour across charts.
var modeColors = map[string]color.RGBA{
	"aggregated": {R: 0x1f, G: 0x77, B: 0xb4, A: 0xff},
	"single":     {R: 0xd6, G: 0x27, B: 0x28, A: 0xff},
}

// palette colours the lines of modes without a colour of their own.
var palette = []color.RGBA{
	{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff}, {R: 0xff, G: 0x7f, B: 0x0e, A: 0xff}, {R: 0x2c, G: 0xa0, B: 0x2c, A: 0xff},
	{R: 0xd6, G: 0x27, B: 0x28, A: 0xff}, {R: 0x94, G: 0x67, B: 0xbd, A: 0xff}, {R: 0x8c, G: 0x56, B: 0x4b, A: 0xff},
	{R: 0xe3, G: 0x77, B: 0xc2, A: 0xff}, {R: 0x7f, G: 0x7f, B: 0x7f, A: 0xff},
}

// Chart scales for ChartOptions.Scale.
const (
	// ScaleAuto is logarithmic when the modes differ by more than 20x, so
	// the slower mode stays visible, and linear otherwise.
	ScaleAuto = "auto"
	// ScaleLinear is a linear y axis from 0.
	ScaleLinear = "linear"
	// ScaleLog is a logarithmic y axis.
	ScaleLog = "log"
)

// ChartOptions tune WriteChart. The zero value is ScaleAuto.
type ChartOptions struct {
	// Scale is ScaleAuto (""), ScaleLinear or ScaleLog.
	Scale string
}

// WriteChart draws acknowledged trades/s over time, one line per mode,
// and saves it to path; the extension chooses the format (.png, .svg,
// .pdf). A dashed vertical line marks where offering stopped and draining
// began. Only whole seconds are drawn (the last, partial one is left out).
// On a logarithmic axis a second with no acknowledgement is a gap in the
// line, not a point at 1.
func (r *Report) WriteChart(path string, opts ChartOptions) error {
	p := plot.New()
	s := r.Settings
	p.Title.Text = fmt.Sprintf("Acknowledged trades per second (%d shards, %s)", s.Shards, s.Endpoint)
	p.Title.Padding = vg.Points(6)
	p.X.Label.Text = "seconds since the mode started"
	p.Y.Label.Text = "trades acknowledged per second"
	p.Legend.Top = true
	p.Legend.Left = false
	p.Legend.XOffs = -vg.Points(6)
	p.Legend.YOffs = -vg.Points(6)
	p.Legend.Padding = vg.Points(2)
	p.Legend.ThumbnailWidth = vg.Points(18)

	lo, hi, xMax := math.Inf(1), 0.0, 0.0
	for _, m := range r.Modes {
		for _, v := range m.AckedSeries {
			if v > 0 {
				lo, hi = math.Min(lo, v), math.Max(hi, v)
			}
		}
		xMax = math.Max(xMax, float64(len(m.AckedSeries))*m.IntervalSeconds)
	}
	var logY bool
	switch opts.Scale {
	case ScaleLog:
		logY = hi > 0
	case ScaleLinear:
	case ScaleAuto, "":
		logY = hi > 0 && hi/lo > 20
	default:
		return fmt.Errorf("chart: unknown scale %q: use auto, linear or log", opts.Scale)
	}
	// Headroom above the highest value keeps the legend (top right) off
	// the lines.
	yMin, yMax := 0.0, hi*1.45
	if logY {
		p.Y.Scale = plot.LogScale{}
		p.Y.Tick.Marker = plot.LogTicks{Prec: -1}
		p.Y.Label.Text += " (log scale)"
		yMin, yMax = math.Pow(10, math.Floor(math.Log10(lo))), hi*8
	}
	if hi == 0 {
		yMax = 1
	}
	p.Y.Min, p.Y.Max = yMin, yMax
	p.X.Min, p.X.Max = 0, math.Max(xMax, 1)
	p.Add(plotter.NewGrid())

	for i, m := range r.Modes {
		c, ok := modeColors[m.Mode]
		if !ok {
			c = palette[i%len(palette)]
		}
		first := true
		for _, seg := range segments(m.AckedSeries, m.IntervalSeconds, logY) {
			line, err := plotter.NewLine(seg)
			if err != nil {
				return fmt.Errorf("chart %s: %w", m.Mode, err)
			}
			line.Color = c
			line.Width = vg.Points(1.5)
			p.Add(line)
			if first {
				p.Legend.Add(fmt.Sprintf("%s: %s/s over the run", m.Mode, count(int64(m.AckedPerSec))), line)
				first = false
			}
		}
	}
	// Where offering stopped and draining began: the configured duration,
	// or the longest measured window when there is none.
	x := s.Duration
	if x <= 0 {
		for _, m := range r.Modes {
			x = math.Max(x, m.DurationSeconds)
		}
	}
	if x > 0 {
		mark, err := plotter.NewLine(plotter.XYs{{X: x, Y: yMin}, {X: x, Y: yMax}})
		if err != nil {
			return fmt.Errorf("chart: %w", err)
		}
		mark.Color = color.Gray{Y: 0x70}
		mark.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
		p.Add(mark)
		p.Legend.Add("offering ends here, draining after", mark)
	}
	if err := p.Save(9*vg.Inch, 4.5*vg.Inch, path); err != nil {
		return fmt.Errorf("save chart %s: %w", path, err)
	}
	return nil
}

// segments turns a series of rates per interval into points at the middle
// of each interval, split into runs of drawable values: on a logarithmic
// axis a value of 0 cannot be drawn and ends a segment.
func segments(series []float64, interval float64, logY bool) []plotter.XYs {
	var out []plotter.XYs
	var cur plotter.XYs
	for i, v := range series {
		if logY && v <= 0 {
			if len(cur) > 0 {
				out = append(out, cur)
			}
			cur = nil
			continue
		}
		cur = append(cur, plotter.XY{X: (float64(i) + 0.5) * interval, Y: v})
	}
	if len(cur) > 0 {
		out = append(out, cur)
	}
	return out
}
